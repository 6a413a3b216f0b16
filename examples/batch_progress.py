"""Run many prompts with a progress bar, keep going when some fail, and retry only those.

Offline on the fake provider, which is scripted here to fail some calls. The same flow is what
`muse batch prompts.txt -o results.jsonl` does from the command line.
"""

import muse_sdk as muse

prompts = [f"Write an ad for product {i}" for i in range(20)] + [""]  # the last one is invalid

# The first two calls fail with non-retried errors; the rest succeed.
gen = muse.load("fake:echo", failures=["auth", "bad_request"], latency_s=0.01)
results = gen.batch(prompts, max_tokens=5, max_concurrency=4, progress=True)
print(results.summary())

for index, error in results.errors.items():
    print(f"  prompt {index} failed: {type(error).__name__}: {error}")

# Retry only the failed prompts that can be retried (not the empty one), keeping their positions.
retry = [i for i, error in results.errors.items() if not isinstance(error, muse.InputError)]
again = gen.batch([prompts[i] for i in retry], max_tokens=5)
texts = results.texts
for index, text in zip(retry, again.texts, strict=True):
    texts[index] = text
print(f"after retry: {sum(t is not None for t in texts)} of {len(prompts)} prompts answered")
print("first:", texts[0])
