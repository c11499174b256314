"""A short decoder fuzz run: every mutated or random file is a clean error or the exact image."""


import pytest

from neuralzip.fuzz import fuzz


def test_short_fuzz_run_over_every_codec(tiny_codecs):
    report = fuzz(["png", "webp", "jxl", "j2k", "jpeg", "pixelcnn", "flow", "vae", "local", "local-photo"], cases=1000, seed=7, time_limit=60)
    assert report.cases == 1000
    assert report.bad == 0, report.failures[:3]
    assert report.outcomes["error"] > 400  # most mutations must be caught
    assert set(report.by_codec) >= {"png", "webp", "jxl", "j2k", "jpeg", "pixelcnn", "flow", "vae", "local", "local-photo", "random"}



# Files the fuzzer found (2026-12-01): a header asking for alpha over a payload without it
# crashed the classical decoders' channel split; they must end in a clean error.
FOUND_BY_FUZZING = [
    "4e5a4950010200000000020808cd7e6449bc0152494646b4000000574542505650384ca80000002f07c0010005830000cb4633cdba6ddb6418004099ff1fcacdc8f6350c1a49529cf3f3b078ccd8ff00dea1e00df74911ad835d11ca5792d84802aabd12d631d6fb93d36fa5ddb46523feeaf7f6638de21d7bf2d70cd276b4b0de95caf9f5f8928bc3a6792f3b4c575511bcdb5ab105a2945c6a151bbf8f2ff916bc8f929b425dc617b7df9e400f119df8b8b1660a4b09ade185eaf2efebe3346929a9087fbc6aedfaa4cabfebec0a",
    "4e5a49500103000000000209073ee22f8167ff0a30301009080001006c014b189bed283c050525012c3c04c718c318c646c7c6181d42048c2b9a790b04095071e75c4042fe960d36f1b044fe0839942121252748c9ec32f3de425122da0d4602ad198e288b6522851f2aa26dd343cc1d88dec62c6bc1eb2507",
]


@pytest.mark.parametrize("hexdata", FOUND_BY_FUZZING)
def test_files_found_by_fuzzing_fail_cleanly(hexdata):
    from neuralzip import api
    from neuralzip.container import FormatError

    with pytest.raises(FormatError):
        api.decompress_all(bytes.fromhex(hexdata))
