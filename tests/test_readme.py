"""The README's quick start is what CI runs."""

import re


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    test_command = "pip install -e '.[test]' && pytest"
    assert any(block.strip().endswith(test_command) for block in _shell_blocks(readme))
    assert f"\n{test_command}\n" in ci


def test_readme_quick_start_serves(repo_root):
    readme = (repo_root / "README.md").read_text()
    first = _shell_blocks(readme)[0].strip()
    assert first.startswith("python3 -m venv .venv")
    assert first.endswith("&& meihua serve")


def test_readme_graphql_examples_match_the_schema(repo_root):
    from graphql import parse, validate

    from meihua.schema import build_schema

    schema = build_schema()._schema
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.S)
    assert blocks
    for block in blocks:
        document = re.sub(r'"<[^>]+>"', '"placeholder"', block)
        assert [e.message for e in validate(schema, parse(document))] == [], block
