"""Prompt templates and code extraction.

- :class:`PromptTemplate`: ``{name}`` templates, safe by construction; from a file or a TOML file
  of named templates (:func:`load_templates`).
- :class:`ChatTemplate` and :class:`FewShotTemplate`: chat messages and few-shot prompts.
- :class:`CodeGenerationTemplate`: a structured code request (en or zh) whose ``run`` returns a
  checked :class:`CodeResult`; :func:`extract_code` applies the same fence rules to any reply.

Every template runs the same way: values in one mapping, generation parameters as keywords,
``template.run(gen, {"topic": "autumn"}, max_tokens=50)``; a code template takes the requirement,
``code_template.run(gen, "a CLI that ...", repair_attempts=2, max_tokens=512)``.
"""

from __future__ import annotations

from muse_sdk.templates._chat import ChatTemplate, FewShotTemplate
from muse_sdk.templates._code import CodeGenerationTemplate
from muse_sdk.templates._extract import LANGUAGE_ALIASES, extract_code, normalize_language
from muse_sdk.templates._files import load_templates
from muse_sdk.templates._prompt import PromptTemplate
from muse_sdk.templates._result import CodeResult

__all__ = [
    "LANGUAGE_ALIASES",
    "ChatTemplate",
    "CodeGenerationTemplate",
    "CodeResult",
    "FewShotTemplate",
    "PromptTemplate",
    "extract_code",
    "load_templates",
    "normalize_language",
]
