"""A Chinese poem from a PromptTemplate (offline by default).

python examples/poem_zh.py                   # the fake provider, a scripted poem
python examples/poem_zh.py local:muse-tiny   # any "provider:model"
"""

import sys

import muse_sdk as muse
from muse_sdk.templates import PromptTemplate

poem = PromptTemplate("写一首关于{topic}的{form}，意境要{mood}。\n\n")

if len(sys.argv) > 1:
    gen = muse.load(sys.argv[1])
else:
    gen = muse.load("fake:script", responses=["秋风起兮白云飞，\n草木黄落兮雁南归。"])

values = {"topic": "秋天", "form": "七言绝句", "mood": "悠远"}
print(poem.render(**values), end="")
print(poem.run(gen, values, max_tokens=64, temperature=0.8).text)
