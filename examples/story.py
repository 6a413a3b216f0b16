"""A story opening from a PromptTemplate (offline by default).

python examples/story.py                   # the fake provider, a scripted continuation
python examples/story.py local:muse-tiny   # any "provider:model"
"""

import sys

import muse_sdk as muse
from muse_sdk.templates import PromptTemplate

story = PromptTemplate("Once upon a time, {hero} lived in {place}. One day,")

if len(sys.argv) > 1:
    gen = muse.load(sys.argv[1])
else:
    gen = muse.load(
        "fake:script",
        responses=[" a letter arrived with no stamp and no name, only a map of the sea."],
    )

values = {"hero": "a lighthouse keeper named Ada", "place": "a town at the edge of the map"}
result = story.run(gen, values, max_tokens=50, temperature=0.7, no_repeat_ngram_size=2)
print(story.render(**values) + result.text)
