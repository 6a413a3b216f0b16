"""Ad copy from a PromptTemplate, with the house style filled in by partial() (offline by default).

python examples/ad_copy.py                   # the fake provider, scripted copy
python examples/ad_copy.py local:muse-tiny   # any "provider:model"
"""

import sys

import muse_sdk as muse
from muse_sdk.templates import PromptTemplate

brief = PromptTemplate(
    "为{product}写一段广告文案。\n目标受众：{audience}\n卖点：{selling_points}\n"
    "字数：不超过{words}字。\n\n广告文案："
)
# Fix the house style once; each campaign fills in the rest.
campaign = brief.partial(words=50)

if len(sys.argv) > 1:
    gen = muse.load(sys.argv[1])
else:
    gen = muse.load("fake:script", responses=["一口清甜，唤醒整个早晨——山泉绿茶，自然的味道。"])

values = {"product": "山泉绿茶", "audience": "城市白领", "selling_points": "低糖、清爽、天然"}
print(campaign.render(**values))
print(campaign.run(gen, values, max_tokens=80, temperature=0.9).text)
