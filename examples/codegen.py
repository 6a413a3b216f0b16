"""Code generation: the seed article's Chinese prompt as a CodeGenerationTemplate.

    python examples/codegen.py                            # offline: fake provider, scripted
    python examples/codegen.py local:muse-tiny            # any "provider:model" or profile
    python examples/codegen.py local:muse-tiny --primed   # end the prompt inside a ```python
                                                          # fence (helps completion models)

Offline, the first scripted reply does not parse, so the template re-asks once with the syntax
error (repair_attempts=1) and the second reply is used.
"""

import argparse

import muse_sdk as muse
from muse_sdk.templates import CodeGenerationTemplate

REQUIREMENT = "实现一个简单的图像分类模型,能够识别猫狗图像。"

BROKEN_REPLY = """好的，下面是实现代码：

```python
def load_dataset(path:
    return []
```
"""

FIXED_REPLY = """抱歉，上一段代码有语法错误。修正后的完整代码如下：

```python
from pathlib import Path


def load_dataset(root: str) -> list[tuple[Path, int]]:
    # 1. 数据集加载和预处理: 文件名以 cat 开头的是猫 (0)，其余是狗 (1)
    return [(p, 0 if p.name.startswith("cat") else 1) for p in Path(root).glob("*.jpg")]


def train(samples: list[tuple[Path, int]]) -> float:
    # 2. 模型定义和训练: 这里用多数类作为最简单的基线模型
    labels = [label for _, label in samples]
    return sum(labels) / max(len(labels), 1)


def predict(model: float) -> int:
    # 3. 模型评估和预测
    return int(model >= 0.5)
```

以上代码包括数据加载、训练和预测三个部分。
"""

parser = argparse.ArgumentParser(description="Generate checked code from the seed's prompt.")
parser.add_argument("model", nargs="?", help="provider:model or profile (default: fake)")
parser.add_argument("--primed", action="store_true", help="end the prompt inside a fence")
args = parser.parse_args()

template = CodeGenerationTemplate(
    "python",
    locale="zh",
    sections=["数据集加载和预处理", "模型定义和训练", "模型评估和预测"],
    primed=args.primed,
)

if args.model and args.model.startswith("local:"):
    # A small local model has a short context (muse-tiny: 512 tokens); the repair prompt repeats
    # the request and the broken code, so let it keep the most recent tokens.
    gen = muse.load(args.model, truncate="left")
elif args.model:
    gen = muse.load(args.model)
else:
    gen = muse.load("fake:script", responses=[BROKEN_REPLY, FIXED_REPLY])

print("--- prompt ---")
print(template.render(REQUIREMENT))
result = template.run(gen, REQUIREMENT, repair_attempts=1, max_tokens=200, temperature=0.7, seed=1)
print(f"--- code ({result.language}, {len(result.blocks)} block(s), repairs={result.repairs}) ---")
print(result.code)
print("--- check ---")
print(f"truncated={result.truncated} syntax_error={result.syntax_error}")
