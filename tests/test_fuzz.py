"""A short decoder fuzz run: every mutated or random file is a clean error or the exact image."""


from neuralzip.fuzz import fuzz


def test_short_fuzz_run_over_every_codec(tiny_codecs):
    report = fuzz(["png", "webp", "jxl", "j2k", "jpeg", "pixelcnn", "flow", "vae", "local"], cases=1000, seed=7, time_limit=60)
    assert report.cases == 1000
    assert report.bad == 0, report.failures[:3]
    assert report.outcomes["error"] > 400  # most mutations must be caught
    assert set(report.by_codec) >= {"png", "webp", "jxl", "j2k", "jpeg", "pixelcnn", "flow", "vae", "local", "random"}
