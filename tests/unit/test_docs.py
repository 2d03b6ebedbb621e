"""The docs cannot drift from the code: the key reference is generated, and every YAML example
in docs/ and examples/ validates."""

import re
from pathlib import Path

import yaml

from failwell.config import parse_config
from failwell.config.reference import reference
from failwell.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert reference() in text, "regenerate: python -m failwell.config.reference"


def test_yaml_examples_in_docs_validate() -> None:
    blocks = []
    for doc in [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "routes" in data:
                blocks.append((doc.name, data))
    assert blocks
    env = {"LLM_KEY": "x", "WEB_KEY": "k" * 32, "OPS_KEY": "o" * 32}
    for name, data in blocks:
        try:
            parse_config(data, env=env, resolve=False)
        except ConfigError as exc:
            raise AssertionError(f"a YAML example in {name} does not validate: {exc}") from None


def test_example_configs_validate() -> None:
    paths = sorted((ROOT / "examples").glob("*.yaml"))
    assert paths
    for path in paths:
        env = {"LLM_KEY": "x", "FAILWELL_S3_KEY": "x", "FAILWELL_S3_SECRET": "x"}
        parse_config(yaml.safe_load(path.read_text()), env=env, resolve=False)
