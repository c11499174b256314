"""BatchAnsStack: many stacks pushed and popped together behave exactly like constriction's
AnsCoder given the same operations (words, sizes and popped symbols), regions growing."""

import numpy as np
import pytest

from neuralzip.coding import TOTAL, AnsStack, BatchAnsStack, seed_words


@pytest.mark.parametrize("push_share", [0.55, 0.85])
def test_batch_stack_matches_constriction(push_share):
    rng = np.random.default_rng(int(push_share * 100))
    seeds = [seed_words(k, k) for k in (0, 1, 7, 100, 3)]
    stack = BatchAnsStack(seeds, capacity=4)
    references = [AnsStack(s.copy()) for s in seeds]
    width = TOTAL // 256
    for _ in range(3000):
        streams = np.sort(rng.choice(len(seeds), rng.integers(1, len(seeds) + 1), replace=False))
        if rng.random() < push_share:
            frequency = rng.integers(1, TOTAL // 2, len(streams))
            left = rng.integers(1, TOTAL - frequency)
            stack.push_streams(streams, left, frequency)
            for j, s in enumerate(streams):  # the same interval as the middle symbol of a 3-symbol table
                references[s].push(np.array([1]), np.array([[left[j], frequency[j], TOTAL - left[j] - frequency[j]]]))
        else:
            value = stack.quantiles(streams) // width
            stack.advance_streams(streams, value * width, np.full(len(streams), width))
            for j, s in enumerate(streams):
                assert references[s].pop(np.full((1, 256), width))[0] == value[j]
    for i, reference in enumerate(references):
        assert np.array_equal(stack.streams()[i], reference.words())
        assert stack.num_bits()[i] == reference.num_bits()
    if push_share > 0.8:
        assert stack._capacity > 128  # the regions had to grow


@pytest.mark.parametrize("accelerated", [True, False])
def test_push_sequences_equals_pushing_symbol_by_symbol(accelerated, monkeypatch):
    """Whole sequences pushed at once (the C kernel, or the numpy loop without it) leave the
    same words as pushing each symbol alone, last first; regions grow as needed."""
    from neuralzip.exact import kernels

    if accelerated and kernels.ans_kernel() is None:
        pytest.skip("the C accelerator is not built")
    if not accelerated:
        monkeypatch.setattr(kernels, "ans_kernel", lambda: None)
    rng = np.random.default_rng(3)
    seeds = [seed_words(k, k) for k in (1, 5, 40, 2)]
    batch, reference = BatchAnsStack(seeds, capacity=4), BatchAnsStack(seeds, capacity=4)
    for _ in range(20):
        streams = np.sort(rng.choice(len(seeds), rng.integers(1, len(seeds) + 1), replace=False))
        lengths = rng.integers(0, 60, len(streams))
        frequency = rng.integers(1, TOTAL // 3, (len(streams), 60))
        left = rng.integers(0, TOTAL - frequency)
        batch.push_sequences(streams, left, frequency, lengths)
        for k in range(59, -1, -1):
            rows = np.nonzero(k < lengths)[0]
            if len(rows):
                reference.push_streams(streams[rows], left[rows, k], frequency[rows, k])
    for mine, theirs in zip(batch.streams(), reference.streams()):
        assert np.array_equal(mine, theirs)
    assert batch._capacity > 64
