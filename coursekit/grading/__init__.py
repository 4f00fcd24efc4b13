"""From solutions to grades: the release (solutions -> student notebooks) and the autograder.

Import the module you need (``coursekit.grading.release``, ``coursekit.grading.autograde``).
"""
