"""The single batched inference pass: values match a direct full-batch computation, the caller's
model is left as it was, and embeddings come from the classifier head's input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bnnr_core.inference import evaluation_mode, last_linear_layer, run_inference
from bnnr_core.testing import make_tiny_dataset, make_tiny_model


def _task(name: str, **options: Any) -> Any:
    from bnnr_core.plugins import load_plugins

    return load_plugins(environ={}).component("task", name).create(**options)


def test_results_equal_one_full_batch_forward_pass() -> None:
    model, dataset = make_tiny_model(), make_tiny_dataset()
    images, labels = dataset.tensors
    # batch size 7 leaves a short last batch: results must not depend on batching
    predictions = run_inference(model, DataLoader(dataset, batch_size=7), _task("classification"))
    with torch.no_grad():
        expected_logits = model(images)
        expected_embeddings = model[:-1](images)
    np.testing.assert_allclose(predictions.logits, expected_logits.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        predictions.probabilities, torch.softmax(expected_logits, 1).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(predictions.targets, labels.numpy())
    np.testing.assert_allclose(
        predictions.per_sample_loss,
        F.cross_entropy(expected_logits, labels, reduction="none").numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert predictions.embeddings is not None
    np.testing.assert_allclose(predictions.embeddings, expected_embeddings.numpy(), atol=1e-6)
    assert predictions.embedding_note is None
    assert (predictions.num_samples, predictions.num_classes) == (48, 3)


class _WithNormAndDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten()
        )
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))


def test_caller_model_mode_and_state_are_unchanged() -> None:
    torch.manual_seed(0)
    model = _WithNormAndDropout().train()
    model.features[1].eval()  # a mixed-mode model: each submodule's own mode must come back
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    modes_before = [module.training for module in model.modules()]
    dataset = make_tiny_dataset()
    first = run_inference(model, DataLoader(dataset, batch_size=16), _task("classification"))
    second = run_inference(model, DataLoader(dataset, batch_size=5), _task("classification"))
    # eval mode during the pass: dropout off, batch-norm running statistics used and not updated
    np.testing.assert_allclose(first.logits, second.logits, atol=1e-6)
    assert [module.training for module in model.modules()] == modes_before
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_evaluation_mode_restores_even_after_an_error() -> None:
    model = _WithNormAndDropout().train()
    with pytest.raises(RuntimeError), evaluation_mode(model):
        assert not model.training
        raise RuntimeError("stop")
    assert model.training and model.dropout.training


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_scripted_model_has_no_embeddings_and_says_why() -> None:
    model = torch.jit.script(make_tiny_model())
    predictions = run_inference(
        model, DataLoader(make_tiny_dataset(), batch_size=16), _task("classification")
    )
    assert predictions.embeddings is None
    assert predictions.embedding_note is not None and "nn.Linear" in predictions.embedding_note
    assert predictions.logits.shape == (48, 3)


def test_embeddings_can_be_turned_off() -> None:
    predictions = run_inference(
        make_tiny_model(),
        DataLoader(make_tiny_dataset(), batch_size=16),
        _task("classification"),
        capture_embeddings=False,
    )
    assert predictions.embeddings is None
    assert predictions.embedding_note == "embeddings were not requested"
    assert last_linear_layer(make_tiny_model()) is not None


def test_multilabel_targets_and_loss() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    images = torch.rand(10, 1, 8, 8)
    targets = (torch.rand(10, 4) > 0.5).float()
    predictions = run_inference(
        model, DataLoader(TensorDataset(images, targets), batch_size=4), _task("multilabel")
    )
    with torch.no_grad():
        logits = model(images)
    expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
    np.testing.assert_allclose(predictions.per_sample_loss, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictions.probabilities, torch.sigmoid(logits).numpy(), atol=1e-6)
    np.testing.assert_array_equal(predictions.targets, targets.numpy())


def test_empty_data_and_wrong_output_shape_are_clear_errors() -> None:
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="no batches"):
        run_inference(make_tiny_model(), DataLoader(empty, batch_size=4), _task("classification"))
    flat = nn.Sequential(nn.Flatten(0))
    with pytest.raises(TypeError, match=r"\(batch, classes\) tensor"):
        run_inference(flat, DataLoader(make_tiny_dataset(), batch_size=4), _task("classification"))
