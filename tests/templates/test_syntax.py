"""check_code: Python by ast, other languages by tree-sitter, the rest "not checked"."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import muse_sdk as muse
from muse_sdk.templates import CodeGenerationTemplate, _syntax, extract_code
from muse_sdk.templates._result import check_syntax
from muse_sdk.templates._syntax import (
    GRAMMARS,
    INSTALL_HINT,
    SyntaxCheck,
    SyntaxProblem,
    check_code,
)

needs_pack = pytest.mark.skipif(
    importlib.util.find_spec("tree_sitter_language_pack") is None,
    reason="needs the code extra: pip install 'muse-sdk[code]'",
)

# language -> (valid code, broken code, (message, line, column) of the broken code's problem)
CASES: dict[str, tuple[str, str, tuple[str, int, int]]] = {
    "javascript": (
        "import fs from 'node:fs';\n"
        "export async function readJson(path) {\n"
        "  const text = await fs.promises.readFile(path, 'utf8');\n"
        "  return JSON.parse(text);\n"
        "}\n"
        "const xs = [1, 2, 3].map((x) => x * 2).filter(Boolean);\n"
        "const { a, ...rest } = obj?.deep ?? {};\n"
        'const App = () => <div className="app">{xs.length}</div>;',
        "function add(a, b) {\n  return a + ;\n}",
        ("missing identifier", 2, 13),
    ),
    "typescript": (
        "interface User { id: number; name?: string; readonly tags: string[] }\n"
        "type Id<T> = T extends { id: infer U } ? U : never;\n"
        "enum Color { Red = 'red' }\n"
        "export class Repo<T extends User> {\n"
        "  private items = new Map<number, T>();\n"
        "  async find(id: number): Promise<T | undefined> { return this.items.get(id)!; }\n"
        "}\n"
        "const user = obj as unknown as User;",
        "function add(a: number, b: number): number {\n  return a + b;",
        ("missing '}'", 2, 16),
    ),
    "java": (
        "import java.util.*;\n\n"
        "public class Main {\n"
        "    public record Point(int x, int y) {}\n"
        "    public static void main(String[] args) {\n"
        '        var names = List.of("a", "b").stream().map(String::toUpperCase).toList();\n'
        '        String s = switch (names.size()) { case 2 -> "two"; default -> "other"; };\n'
        "        Runnable r = () -> System.out.println(s);\n"
        "    }\n"
        "}",
        "class A {\n  int f() {\n    return 1\n  }\n}",
        ("missing ';'", 3, 13),
    ),
    "go": (
        "package main\n\n"
        'import "fmt"\n\n'
        "type Stack[T any] struct{ items []T }\n\n"
        "func main() {\n"
        '\tm := map[string]int{"a": 1}\n'
        "\tfor k, v := range m {\n"
        '\t\tfmt.Printf("%s=%d\\n", k, v)\n'
        "\t}\n"
        "}",
        'package main\n\nfunc main() {\n\tfmt.Println("hi"\n}',
        ("missing ')'", 4, 18),
    ),
    "rust": (
        "use std::collections::HashMap;\n\n"
        "#[derive(Debug)]\n"
        "struct Point<T> { x: T, y: T }\n\n"
        "fn main() {\n"
        "    let mut counts: HashMap<&str, i32> = HashMap::new();\n"
        '    *counts.entry("a").or_insert(0) += 1;\n'
        "    let v: Vec<i32> = (1..=10).filter(|x| x % 2 == 0).collect();\n"
        '    println!("{v:?}");\n'
        "}",
        "fn main() {\n    let x = ;\n}",
        ("syntax error near '='", 2, 11),
    ),
    "c": (
        "#include <stdio.h>\n"
        "#define MAX(a, b) ((a) > (b) ? (a) : (b))\n\n"
        "typedef struct node { int value; struct node *next; } node_t;\n\n"
        "int main(int argc, char **argv) {\n"
        "    int xs[] = {1, 2, 3};\n"
        '    printf("%d\\n", MAX(xs[0], xs[1]));\n'
        "    return 0;\n"
        "}",
        "int main(void) {\n    int x = 1\n    return x;\n}",
        ("missing ';'", 2, 14),
    ),
    "cpp": (
        "#include <iostream>\n#include <vector>\n#include <algorithm>\n\n"
        "template <typename T>\n"
        "class Stack {\n"
        "public:\n"
        "    void push(T v) { items_.push_back(std::move(v)); }\n"
        "private:\n"
        "    std::vector<T> items_;\n"
        "};\n\n"
        "int main() {\n"
        "    std::vector<int> v{3, 1, 2};\n"
        "    std::sort(v.begin(), v.end(), [](int a, int b) { return a > b; });\n"
        "    for (const auto& x : v) std::cout << x << ' ';\n"
        "}",
        "class Point {\n    int x;\n};\n\nint main() {\n    Point p;\n    return p.x +;\n}",
        ("missing identifier", 7, 17),
    ),
    "csharp": (
        "using System;\nusing System.Linq;\n\n"
        "public record Person(string Name, int Age);\n\n"
        "public class Program\n{\n"
        "    public static void Main(string[] args)\n    {\n"
        '        var people = new[] { new Person("Ann", 30) };\n'
        "        var names = people.Where(p => p.Age > 26).Select(p => p.Name);\n"
        '        Console.WriteLine($"Names: {string.Join(", ", names)}");\n'
        "    }\n}",
        'class A {\n    void F() {\n        Console.WriteLine("hi";\n    }\n}',
        ("missing ')'", 3, 31),
    ),
    "bash": (
        "#!/usr/bin/env bash\nset -euo pipefail\n\n"
        'for f in "$@"; do\n'
        '  if [[ -f "$f" ]]; then\n'
        '    echo "$f: $(wc -l < "$f") lines"\n'
        "  fi\n"
        "done\n"
        "ls -la | grep foo > /dev/null 2>&1 && echo found || true",
        'for f in *.txt; do\n  echo "$f"',
        ("missing 'done'", 2, 12),
    ),
    "css": (
        ":root { --main: #333; }\n"
        "@media (max-width: 600px) {\n"
        '  .card > p:first-child::before { content: "»"; color: var(--main); }\n'
        "}\n"
        "a:hover { color: rgba(0, 0, 0, .5); transition: color .2s ease-in-out; }\n"
        ".grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)); }",
        "body {\n  color: red;",
        ("missing '}'", 2, 14),
    ),
    "json": (
        '{\n  "name": "demo",\n  "scripts": {"test": "jest"},\n'
        '  "tags": ["a", "b"],\n  "n": -1.5e3,\n  "ok": true,\n  "none": null\n}',
        '{\n  "a": 1,\n}',
        ("syntax error near ','", 2, 9),
    ),
    "yaml": (
        "name: CI\non:\n  push:\n    branches: [main]\njobs:\n  test:\n"
        "    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
        "      - run: pytest -q\nmulti: |\n  line one\n  line two",
        "items: [1, 2\nname: x",
        ("syntax error near '[1, 2'", 1, 8),
    ),
    "toml": (
        '[project]\nname = "demo"\ndependencies = [\n  "requests>=2",\n]\n'
        'authors = [{ name = "Ann" }]\n\n[[tool.mypy.overrides]]\nmodule = "x.*"\n'
        "d = 1979-05-27T07:32:00Z",
        '[tool\nname = "x"',
        ("syntax error near '[tool'", 1, 1),
    ),
}


@pytest.fixture(autouse=True)
def _fresh_grammars():
    _syntax._language.cache_clear()
    yield
    _syntax._language.cache_clear()


@needs_pack
@pytest.mark.parametrize("language", list(CASES))
def test_valid_code_is_ok(language):
    check = check_code(CASES[language][0], language)
    assert check == SyntaxCheck(status="ok", checker=f"tree-sitter {language}")


@needs_pack
@pytest.mark.parametrize("language", list(CASES))
def test_broken_code_gives_its_first_problem(language):
    _, broken, (message, line, column) = CASES[language]
    check = check_code(broken, language)
    assert check.status == "error"
    assert check.checker == f"tree-sitter {language}"
    assert check.problem == SyntaxProblem(message=message, line=line, column=column)
    assert check_syntax(broken, language) == f"{message} (line {line})"


def test_python_is_checked_by_ast():
    check = check_code("def f(x):\n    return (x +\n", "python")
    assert check.checker == "python ast"
    assert check.problem == SyntaxProblem(message="'(' was never closed", line=2, column=12)
    assert str(check.problem) == "'(' was never closed (line 2)"
    assert check_code("def f(x):\n    return x\n", "python") == SyntaxCheck(
        status="ok", checker="python ast"
    )


def test_python_column_counts_characters_and_null_bytes_are_placed():
    assert check_code("é = (", "python").problem == SyntaxProblem(
        message="'(' was never closed", line=1, column=5
    )
    problem = check_code("x = 1\ny = 'a\0'", "python").problem
    assert problem is not None
    assert "null bytes" in problem.message
    assert (problem.line, problem.column) == (2, 7)


@needs_pack
def test_tree_sitter_column_counts_characters_not_bytes():
    problem = check_code('const s = "héllo wörld"; const x = ;', "javascript").problem
    assert problem == SyntaxProblem(message="syntax error near '='", line=1, column=34)


@needs_pack
@pytest.mark.parametrize("language", ["python", *CASES])
@pytest.mark.parametrize("code", ["", "  \n\n"])
def test_blank_code_passes_every_checker(language, code):
    assert check_code(code, language).status == "ok"


@needs_pack
def test_missing_last_newline_is_no_error():
    # extract_code drops a block's last newline; Go statements and C directives end with one.
    assert check_code("package main\n\nvar f string", "go").status == "ok"
    assert check_code("#define T(x) _Generic((x), int: 1, default: 0)", "c").status == "ok"


@needs_pack
def test_yaml_too_deep_for_its_grammar_is_not_checked():
    # 256 levels crash tree-sitter-yaml 0.7.2 (a scanner buffer overflow): in a subprocess, so
    # that a crash fails this test instead of the whole run.
    code = (
        "from muse_sdk.templates._syntax import check_code; "
        "deep = ''.join(' ' * i + 'k:\\n' for i in range(300)); "
        "compact = '- ' * 300 + 'x'; "
        "print(check_code(deep, 'yaml').checker, check_code(compact, 'yml').status, sep='|')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    reason = f"YAML nested past column {_syntax.YAML_MAX_COLUMN} would crash the yaml grammar"
    assert out.stdout.strip() == f"{reason}|not checked"
    nested = "".join(" " * i + f"k{i}:\n" for i in range(_syntax.YAML_MAX_COLUMN - 1))
    assert check_code(nested + " " * 118 + "v: 1", "yaml").status == "ok"
    assert check_code(nested + " " * 118 + "v: [1", "yaml").status == "error"


@needs_pack
def test_typescript_with_jsx_falls_back_to_tsx():
    code = "export default function App({ name }: { name: string }) {\n  return <b>{name}</b>;\n}"
    assert check_code(code, "typescript") == SyntaxCheck(status="ok", checker="tree-sitter tsx")
    # Both grammars reject it: the problem is the typescript grammar's.
    assert check_code("let x: = 1;", "ts").checker == "tree-sitter typescript"


@needs_pack
@pytest.mark.parametrize(("tag", "grammar"), [("yml", "yaml"), ("C++", "cpp"), (" cs ", "csharp")])
def test_other_tags_for_the_same_grammars(tag, grammar):
    assert check_code("x", tag).checker == f"tree-sitter {grammar}"


@pytest.mark.parametrize(
    ("language", "reason"),
    [
        ("kotlin", "no grammar for 'kotlin'"),
        ("swift", "no grammar for 'swift'"),
        ("klingon", "no grammar for 'klingon'"),
        (None, "no language given"),
        ("", "no language given"),
    ],
)
def test_languages_without_a_checker_are_not_checked(language, reason):
    check = check_code("fun f( {", language)
    assert check == SyntaxCheck(status="not checked", checker=reason)
    assert not check.checked
    assert check_syntax("fun f( {", language) is None


HTML_VALID = [
    "<p>Tom & Jerry: 5 > 3</p>",
    "<p>2 < 3, x -> y, a >= b</p>",
    "<ul><li>a<li>b</ul>",
    "<!DOCTYPE html><html><head><title>x</title></head><body><p>hi</body></html>",
    "<script>if (a < b && c > d) {}</script>",
    "<!-- a comment & < > -->\n<table><tr><td>1</td></tr></table>",
    '<form action="/x?a=1&b=2"><input disabled value="a&b"><button>Go</button></form>',
    "<p>&nbsp;&copy; AT&T 2024</p><br/><hr>",
    '<a title="x > y" href="#">ok</a>',
    "<p>写一首诗 & 5 > 3</p>",
]
HTML_BROKEN = [
    ('<a href="x>link</a>', 1, 1),
    ("<p>hi</p></div>", 1, 10),
    ('<div class="a"\n<p>x</p></div>', 2, 1),
    ("<div id=>x</div>", 1, 8),
]


@pytest.mark.parametrize("code", HTML_VALID)
def test_valid_html_text_is_ok(code):
    pytest.importorskip("tree_sitter_language_pack")
    assert check_code(code, "html").status == "ok"


@pytest.mark.parametrize(("code", "line", "column"), HTML_BROKEN)
def test_broken_html_gives_line_and_column(code, line, column):
    pytest.importorskip("tree_sitter_language_pack")
    check = check_code(code, "html")
    assert check.status == "error" and check.checker == "tree-sitter html"
    assert (check.problem.line, check.problem.column) == (line, column)


def test_html_text_is_blanked_only_outside_tags():
    # Why: without the blanking, the grammar rejects valid text (so it was not checked at all).
    assert _syntax._blank_html_text('<p a="1 > 0">5 > 3 & x</p>') == '<p a="1 > 0">5   3   x</p>'


SQL_VALID = [
    "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING;",  # PostgreSQL
    "SELECT TOP 5 * FROM [users] WHERE id = @x",  # T-SQL
    "PRAGMA foreign_keys = ON",  # SQLite
    "SELECT * FROM t ORDER BY a NULLS LAST FETCH FIRST 5 ROWS ONLY",
    "SELECT name FROM users WHERE id = :id",
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nSELECT name FROM t;",
    "WITH r AS (SELECT 1 AS x) SELECT x FROM r UNION ALL SELECT 2",
    "GRANT SELECT ON t TO bob",
]
SQL_BROKEN = [
    ("SELECT * FROM WHERE id = 1", 1, 19, "Expected table name but got 'WHERE'"),
    ("SELECT 1;\nSELEC 2;", 2, 7, "Invalid expression / Unexpected token"),
    ("INSERT INTO t VALUES (1,", 1, 24, None),
]


@pytest.mark.parametrize("code", SQL_VALID)
def test_valid_sql_of_several_dialects_is_ok(code):
    pytest.importorskip("sqlglot")
    assert check_code(code, "sql") == SyntaxCheck(status="ok", checker="sqlglot")


@pytest.mark.parametrize(("code", "line", "column", "message"), SQL_BROKEN)
def test_broken_sql_gives_line_and_column(code, line, column, message):
    pytest.importorskip("sqlglot")
    check = check_code(code, "sql")
    assert check.status == "error" and check.checker == "sqlglot"
    assert (check.problem.line, check.problem.column) == (line, column)
    if message is not None:
        assert check.problem.message == message


def test_without_sqlglot_sql_is_not_checked(monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlglot", None)
    check = check_code("SELEC 1", "sql")
    assert check.status == "not checked" and "pip install 'muse-sdk[code]'" in check.checker


def test_without_the_pack_other_languages_are_not_checked(monkeypatch):
    monkeypatch.setitem(sys.modules, "tree_sitter_language_pack", None)  # import fails
    check = check_code("fn main() {", "rust")
    assert check == SyntaxCheck(status="not checked", checker=INSTALL_HINT)
    assert "pip install 'muse-sdk[code]'" in check.checker
    assert check_code("x = (", "python").status == "error"
    result = extract_code("```rust\nfn main() {\n```", "rust")
    assert (result.syntax_error, result.syntax_checked, result.ok) == (None, False, True)


@needs_pack
def test_grammars_load_once_and_parsers_are_per_call():
    check_code("fn main() {}", "rust")
    check_code("fn main() {", "rust")
    info = _syntax._language.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert _syntax._language("rust") is _syntax._language("rust")


@needs_pack
def test_every_grammar_loads():
    for grammars in GRAMMARS.values():
        for grammar in grammars:
            assert _syntax._language(grammar) is not None


@needs_pack
def test_extract_code_carries_the_problem():
    result = extract_code("Here:\n```go\npackage main\n\nfunc main() {\n\tx := \n}\n```", "go")
    assert result.syntax == SyntaxCheck(
        status="error",
        problem=SyntaxProblem(message="missing identifier", line=4, column=6),
        checker="tree-sitter go",
    )
    assert result.syntax_error == "missing identifier (line 4)"
    assert result.syntax_checked and not result.ok
    fine = extract_code('```json\n{"a": 1}\n```')
    assert (fine.language, fine.syntax_error, fine.syntax_checked, fine.ok) == (
        "json",
        None,
        True,
        True,
    )


def test_extract_code_python_keeps_its_message():
    result = extract_code("```python\nx = 1\ndef f(:\n```", "python")
    assert result.syntax_error == "invalid syntax (line 2)"
    assert result.syntax is not None and result.syntax.problem is not None
    assert (result.syntax.problem.line, result.syntax.problem.column) == (2, 7)
    kotlin = extract_code("```kotlin\nfun f( {\n```")
    assert kotlin.syntax == SyntaxCheck(status="not checked", checker="no grammar for 'kotlin'")
    assert (kotlin.syntax_checked, kotlin.ok) == (False, True)


@needs_pack
def test_run_repairs_other_checked_languages():
    broken, fixed = "```bash\nif [ -f x ]; then\n  echo x\n```", "```bash\necho x\n```"
    gen = muse.load("fake:script", responses=[broken, fixed])
    result = CodeGenerationTemplate("bash").run(gen, "print x", repair_attempts=2)
    assert (result.code, result.syntax_error, result.repairs, gen.calls) == ("echo x", None, 1, 2)
    assert "missing 'fi' (line 2)" in gen.prompts[1]


def test_import_does_not_load_tree_sitter():
    code = (
        "import sys, muse_sdk, muse_sdk.templates as t; t.extract_code('```python\\nx\\n```'); "
        "print(sorted(m for m in sys.modules if m.startswith('tree_sitter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
