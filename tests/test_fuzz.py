"""A short decoder fuzz run: every mutated or random file is a clean error or the exact image."""


from neuralzip import codecs
from neuralzip.fuzz import fuzz


def test_short_fuzz_run_over_every_codec(tiny_pixelcnn, tiny_flow, tiny_vae):
    for codec in (tiny_pixelcnn, tiny_flow, tiny_vae[1]):
        codecs.register(codec)
    report = fuzz(["png", "webp", "jxl", "j2k", "pixelcnn", "flow", "vae"], cases=800, seed=7, time_limit=60)
    assert report.cases == 800
    assert report.bad == 0, report.failures[:3]
    assert report.outcomes["error"] > 400  # most mutations must be caught
    assert set(report.by_codec) >= {"png", "webp", "jxl", "j2k", "pixelcnn", "flow", "vae", "random"}
