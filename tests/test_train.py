"""coursekit.train: batches, fit, evaluate, predict, History, checkpoints."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from coursekit import train
from coursekit.train import History, batches, evaluate, fit, predict


def blobs(n=96, seed=0):
    """Two linearly separable classes in 4-D."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=gen) * 0.5 + (y[:, None] * 2 - 1) * torch.tensor([2.0, 0, 0, 0])
    return x, y


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 2))


# ---------------------------------------------------------------- batches

def test_batches_slices_in_order_and_is_reiterable():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    data = batches(x, y, batch_size=4)
    assert len(data) == 3
    first = [b[1].tolist() for b in data]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b[1].tolist() for b in data] == first  # a second epoch sees the same data


def test_batches_drop_last_and_shuffle_cover_every_sample_once():
    y = torch.arange(10)
    data = batches(y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True)
    assert len(data) == 2
    epoch1 = torch.cat([b[0] for b in data])
    epoch2 = torch.cat([b[0] for b in data])
    assert len(epoch1) == 8 and len(set(epoch1.tolist())) == 8
    assert not torch.equal(epoch1, epoch2)  # a new order every epoch
    full = torch.cat([b[0] for b in batches(y, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert sorted(full.tolist()) == list(range(10))


def test_batches_shuffle_is_reproducible_from_the_generator():
    y = torch.arange(20)
    runs = [[b[0].tolist() for b in batches(y, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(3))]
            for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("call, match", [
    (lambda: batches(batch_size=2), "at least one tensor"),
    (lambda: batches(torch.zeros(3), torch.zeros(4), batch_size=2), r"same first dimension.*\[3, 4\]"),
    (lambda: batches(torch.zeros(3), batch_size=0), "positive integer"),
])
def test_batches_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_batches_rejects_non_tensors():
    with pytest.raises(TypeError, match="list"):
        batches([1, 2, 3], batch_size=2)


# ---------------------------------------------------------------- fit / evaluate / predict

def test_fit_learns_separable_data_and_records_history():
    x, y = blobs()
    model = mlp()
    history = fit(model, batches(x, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)),
                  epochs=8, lr=1e-2, val_data=batches(x, y, batch_size=32), progress=False, device="cpu")
    assert len(history) == 8
    assert history.column("epoch") == list(range(1, 9))
    assert set(history[0]) == set(train.COLUMNS)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] >= 0.95
    assert history.best("val_loss")["val_loss"] == min(history.column("val_loss"))
    assert history.best("val_accuracy")["val_accuracy"] == max(history.column("val_accuracy"))
    assert all(lr == 1e-2 for lr in history.column("lr"))
    result = evaluate(model, batches(x, y, batch_size=50), device="cpu")
    assert result["n"] == len(y)
    assert result["accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    assert result["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)


def test_evaluate_weights_batches_by_size_and_restores_train_mode():
    x, y = blobs(n=10)
    model = mlp()
    model.train()
    uneven = evaluate(model, batches(x, y, batch_size=3), device="cpu")  # batches of 3, 3, 3, 1
    with torch.no_grad():
        model.eval()
        logits = model(x)
    assert uneven["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert uneven["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    model.train()
    evaluate(model, batches(x, y, batch_size=3), device="cpu")
    assert model.training


def test_predict_concatenates_logits_and_accepts_input_only_batches():
    x, y = blobs(n=10)
    model = mlp()
    model.eval()
    want = model(x).detach()
    got = predict(model, batches(x, y, batch_size=4), device="cpu")
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(predict(model, batches(x, batch_size=3), device="cpu"), want, atol=1e-6)
    assert torch.allclose(predict(model, [x[:5], x[5:]], device="cpu"), want, atol=1e-6)


def test_dense_logits_ignore_index_in_accuracy_and_loss():
    # (B, C, N) logits against (B, N) targets; -1 targets are skipped.
    logits = torch.tensor([[[5.0, 0.0, 5.0], [0.0, 5.0, 0.0]]])  # predicts classes [0, 1, 0]
    targets = torch.tensor([[0, 0, -1]])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits.expand(len(x), -1, -1)

    result = evaluate(Fixed(), [(torch.zeros(1), targets)], device="cpu")
    assert result["accuracy"] == 0.5  # one of the two labelled points is right
    assert result["loss"] == pytest.approx(F.cross_entropy(logits[:, :, :2], targets[:, :2]).item())


def test_multi_input_models_and_tuple_outputs():
    x, y = blobs(n=12)

    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)

        def forward(self, u, v):
            return self.a(u) + self.b(v), "auxiliary"

    model = TwoInputs()
    loss = lambda out, t: F.cross_entropy(out[0], t)  # noqa: E731 - the loss receives the whole tuple
    history = fit(model, batches(x, x, y, batch_size=4), epochs=1, loss_fn=loss, progress=False, device="cpu")
    assert history[0]["train_accuracy"] is not None
    as_pairs = [((x[:6], x[:6]), y[:6]), ((x[6:], x[6:]), y[6:])]
    assert evaluate(model, as_pairs, loss_fn=loss, device="cpu")["n"] == 12
    assert predict(model, as_pairs, device="cpu").shape == (12, 2)


def test_regression_targets_have_no_accuracy():
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Linear(4, 1)
    history = fit(model, batches(x, x[:, :1], batch_size=4), epochs=2, loss_fn=F.mse_loss, progress=False, device="cpu")
    assert history.column("train_accuracy") == [None, None]
    assert history.column("val_loss") == [None, None]


def test_wrong_model_output_shape_names_both_shapes():
    x, y = blobs(n=8)
    with pytest.raises(ValueError, match=r"model output has shape \(4, 2, 1\) but targets have shape \(4,\).*\(B, C\)"):
        fit(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Unflatten(1, (2, 1))), batches(x, y, batch_size=4),
            epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"\(3, 2\) but targets have shape \(4,\)"):
        evaluate(lambda_model(lambda u: torch.zeros(3, 2)), batches(x, y, batch_size=4), device="cpu")


def lambda_model(fn):
    class Wrap(torch.nn.Module):
        def forward(self, x):
            return fn(x)
    return Wrap()


def test_empty_data_is_a_clear_error():
    empty = batches(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        fit(mlp(), empty, epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="no batches"):
        evaluate(mlp(), [], device="cpu")
    with pytest.raises(ValueError, match="no batches"):
        predict(mlp(), [], device="cpu")


def test_bad_arguments():
    x, y = blobs(n=8)
    with pytest.raises(ValueError, match="checkpoint"):
        fit(mlp(), batches(x, y, batch_size=4), epochs=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(mlp(), batches(x, y, batch_size=4), epochs=-1, progress=False)
    with pytest.raises(ValueError, match="targets"):
        fit(mlp(), batches(x, batch_size=4), epochs=1, progress=False, device="cpu")


def test_gradient_clipping_bounds_the_update():
    x, y = blobs(n=16)
    x = x * 1e3  # huge gradients
    deltas = {}
    for clip in (None, 1e-3):
        model = mlp()
        before = [p.detach().clone() for p in model.parameters()]
        fit(model, batches(x, y, batch_size=16), epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
            clip_grad_norm=clip, progress=False, device="cpu")
        deltas[clip] = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]).norm()
    assert deltas[1e-3] <= 1e-3 * 1.0001  # SGD step = lr * clipped gradient
    assert deltas[None] > 100 * deltas[1e-3]


def test_scheduler_is_stepped_per_epoch_and_may_be_a_factory():
    x, y = blobs(n=8)
    history = fit(mlp(), batches(x, y, batch_size=4), epochs=3, lr=0.1, progress=False, device="cpu",
                  scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=10.0)
    history = fit(model, batches(x, y, batch_size=4), epochs=3, optimizer=opt, scheduler=plateau,
                  progress=False, device="cpu")
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])  # never "improves" by 10x


def test_amp_is_ignored_off_cuda():
    x, y = blobs(n=8)
    history = fit(mlp(), batches(x, y, batch_size=4), epochs=1, amp=True, progress=False, device="cpu")
    assert math.isfinite(history[0]["train_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda_trains():
    x, y = blobs()
    model = mlp()
    history = fit(model, batches(x.cuda(), y.cuda(), batch_size=16, shuffle=True), epochs=10, lr=1e-2, amp=True,
                  val_data=batches(x, y, batch_size=32), progress=False, device="cuda")
    assert history[-1]["val_accuracy"] >= 0.95
    assert next(model.parameters()).dtype == torch.float32


def test_progress_bars_render_in_a_terminal(capsys):
    x, y = blobs(n=8)
    fit(mlp(), batches(x, y, batch_size=4), epochs=2, progress=True, desc="demo", device="cpu")
    err = capsys.readouterr().err
    assert "demo" in err and "2/2" in err


# ---------------------------------------------------------------- history

def test_history_round_trips_through_json():
    history = History()
    history.append(epoch=1, train_loss=1.0, train_accuracy=0.5, seconds=0.1, lr=1e-3)
    history.append(epoch=2, train_loss=0.5, train_accuracy=0.75, seconds=0.1, lr=1e-3)
    again = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again.records == history.records
    assert again.column("val_loss") == [None, None]
    assert again.best("train_loss")["epoch"] == 2
    assert again.best("train_accuracy")["epoch"] == 2
    assert "2 epochs" in repr(again)
    with pytest.raises(KeyError, match="no history column"):
        again.column("accuracy")
    with pytest.raises(KeyError, match="unknown history fields"):
        again.append(epoch=3, acc=1.0)
    with pytest.raises(ValueError, match="no 'val_loss' values"):
        again.best("val_loss")


# ---------------------------------------------------------------- checkpoints

class Interrupt(Exception):
    pass


def interrupting(loss_fn, after_batches):
    """A loss that raises after ``after_batches`` calls: a crash in the middle of an epoch."""
    calls = [0]

    def loss(out, t):
        calls[0] += 1
        if calls[0] > after_batches:
            raise Interrupt
        return loss_fn(out, t)
    return loss


def run(tmp_path, epochs, *, model_seed=0, loss_fn=train.cross_entropy, resume=False):
    x, y = blobs()
    model = mlp(seed=model_seed, dropout=0.3)  # dropout consumes the global RNG
    data = batches(x, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)  # decays after epoch 3
    history = fit(model, data, epochs=epochs, optimizer=opt, scheduler=sched, loss_fn=loss_fn,
                  val_data=batches(x, y, batch_size=48), checkpoint=tmp_path / "run.ckpt", resume=resume,
                  progress=False, device="cpu")
    return model, history


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    straight, history = run(tmp_path / "a", 4)
    # Crash in the middle of epoch 3 (6 training + 2 validation loss calls per epoch), then
    # resume in a fresh "process": another initialisation (and so another global RNG state,
    # another data generator state), all of which the checkpoint must restore.
    with pytest.raises(Interrupt):
        run(tmp_path / "b", 4, loss_fn=interrupting(train.cross_entropy, 8 * 2 + 3))
    assert torch.load(tmp_path / "b" / "run.ckpt", weights_only=True)["epoch"] == 2
    resumed, resumed_history = run(tmp_path / "b", 4, model_seed=1, resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    for key in ("train_loss", "val_loss", "lr"):
        assert resumed_history.column(key) == history.column(key)
    assert not list((tmp_path / "b").glob("*.tmp"))  # atomic write left no temporary file


def test_resume_does_change_the_result_if_state_were_lost(tmp_path):
    # The bit-identity above must be able to fail: skipping the resume restarts from scratch.
    straight, _ = run(tmp_path / "a", 3)
    fresh, _ = run(tmp_path / "b", 3, model_seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()))


def test_resume_without_a_checkpoint_file_starts_afresh_and_finished_runs_return(tmp_path):
    _, history = run(tmp_path, 2, resume=True)
    assert len(history) == 2
    model, again = run(tmp_path, 2, resume=True)  # already done: nothing to train
    assert again.records == history.records


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "run.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot resume from checkpoint"):
        run(tmp_path, 1, resume=True)


# ---------------------------------------------------------------- plot_history

def test_plot_history_draws_loss_and_accuracy_panels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coursekit.viz.history import plot_history

    history = History()
    for epoch, loss in enumerate((1.0, 0.6, 0.4), start=1):
        history.append(epoch=epoch, train_loss=loss, train_accuracy=1 - loss / 2, val_loss=loss + 0.1,
                       val_accuracy=0.5, seconds=0.1, lr=1e-3)
    loss_ax, acc_ax = plot_history(history)
    assert [line.get_ydata().tolist() for line in loss_ax.get_lines()] == [[1.0, 0.6, 0.4], [1.1, 0.7, 0.5]]
    assert acc_ax.get_ylabel() == "accuracy" and len(acc_ax.get_lines()) == 2
    regression = History([{**r, "train_accuracy": None, "val_accuracy": None} for r in history.records])
    assert len(plot_history(regression.to_dict())) == 1  # no accuracy panel
    _, ax = plt.subplots()
    (only,) = plot_history(history.records, ax=ax)
    assert only is ax and len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="empty"):
        plot_history(History())
    plt.close("all")
