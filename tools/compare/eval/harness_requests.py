#!/usr/bin/env python3
"""Checks our request building against lm-evaluation-harness's own task definitions.

Reads the task yaml files and their utils.py from a checkout of lm-evaluation-harness (given by
--harness; nothing is vendored here), evaluates doc_to_text / doc_to_choice / doc_to_target the
way its ConfigurableTask does (field name, Jinja template rendered with StrictUndefined and
keep_trailing_newline, literal_eval of rendered choices, digit targets as ints, `!function`
helpers, process_docs), builds the zero-shot multiple-choice requests (target delimiter " ";
"multiple input" when doc_to_text gives an int), and compares them, doc by doc, with the
`arguments` and `target` of our `pnpm eval --log-samples` output. Needs only jinja2 and PyYAML,
so it runs on the dev machine.

usage: python3 harness_requests.py --harness <lm-evaluation-harness dir> --fixtures <dir of <task>.jsonl>
                                   --samples <pnpm eval --log-samples output dir>
"""
import argparse
import ast
import functools
import importlib.util
import json
import os
import sys
import types

import yaml
from jinja2 import BaseLoader, Environment, StrictUndefined

YAML_OF = {
    "hellaswag": "hellaswag/hellaswag.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "winogrande": "winogrande/default.yaml",
    "arc_easy": "arc/arc_easy.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "boolq": "super_glue/boolq/default.yaml",
    "piqa": "piqa/piqa.yaml",
    "xwinograd_zh": "xwinograd/xwinograd_zh.yaml",
    "xstorycloze_zh": "xstorycloze/default_zh.yaml",
    "xnli_zh": "xnli/xnli_zh.yaml",
    "xcopa_zh": "xcopa/default_zh.yaml",
}

ENV = Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)


def load_module(path):
    # utils modules import `datasets` at the top only for type names; a stand-in suffices.
    sys.modules.setdefault("datasets", types.SimpleNamespace(Dataset=object))
    spec = importlib.util.spec_from_file_location(f"harness_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_yaml(path):
    base = os.path.dirname(path)

    def function(loader, node):
        module_name, attr = loader.construct_scalar(node).rsplit(".", 1)
        return getattr(load_module(os.path.join(base, module_name + ".py")), attr)

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", function)
    with open(path, encoding="utf-8") as f:
        config = yaml.load(f, Loader=Loader)
    if "include" in config:
        parent = load_yaml(os.path.join(base, config.pop("include")))
        parent.update(config)
        config = parent
    return config


def render(template, doc):
    return ENV.from_string(template).render(**doc)


class Task:
    def __init__(self, config, docs):
        self.config = config
        process = config.get("process_docs")
        if process is not None:
            # datasets.Dataset.map adds the returned columns to the existing ones.
            docs = process(types.SimpleNamespace(map=lambda fn: [{**d, **fn(d)} for d in docs]))
            docs = [dict(d) for d in docs]
        self.docs = docs
        self.features = set(docs[0].keys()) if docs else set()

    def text(self, doc):
        spec = self.config.get("doc_to_text")
        if isinstance(spec, int) or callable(spec):
            return spec if isinstance(spec, int) else spec(doc)
        if spec in self.features:
            return doc[spec]
        s = render(spec, doc)
        return ast.literal_eval(s) if s.isdigit() and self.config.get("doc_to_choice") is not None else s

    def target(self, doc):
        spec = self.config.get("doc_to_target")
        if isinstance(spec, (int, list)):
            return spec
        if callable(spec):
            return spec(doc)
        if spec in self.features:
            return doc[spec]
        s = render(spec, doc)
        if s.isdigit() and self.config.get("doc_to_choice") is not None:
            return ast.literal_eval(s)
        return s

    def choices(self, doc):
        spec = self.config.get("doc_to_choice")
        if isinstance(spec, list):
            return spec
        if callable(spec):
            return spec(doc)
        if spec in self.features:
            return doc[spec]
        return ast.literal_eval(render(spec, doc))

    def requests(self, doc):
        delim = self.config.get("target_delimiter", " ")
        text, choices = self.text(doc), self.choices(doc)
        if isinstance(text, int):  # multiple input: one context per choice, shared continuation
            return [[c, delim + str(self.target(doc))] for c in choices], text
        target = self.target(doc)
        gold = choices.index(target) if isinstance(target, str) else target
        return [[text, delim + c] for c in choices], gold


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--harness", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--samples", required=True)
    a = p.parse_args()
    tasks_dir = os.path.join(a.harness, "lm_eval", "tasks")
    failures = 0
    for task, rel in YAML_OF.items():
        samples_path = os.path.join(a.samples, f"samples_{task}.jsonl")
        if not os.path.exists(samples_path):
            print(f"{task:<16} no samples, skipped")
            continue
        with open(os.path.join(a.fixtures, f"{task}.jsonl"), encoding="utf-8") as f:
            docs = [json.loads(line) for line in f if line.strip()]
        with open(samples_path, encoding="utf-8") as f:
            ours = [json.loads(line) for line in f if line.strip()]
        t = Task(load_yaml(os.path.join(tasks_dir, rel)), docs)
        bad = 0
        for sample in ours:
            args, gold = t.requests(t.docs[sample["doc_id"]])
            if args != sample["arguments"] or gold != sample["target"]:
                bad += 1
                if bad <= 2:
                    print(f"  {task} doc {sample['doc_id']}: harness {json.dumps([args, gold], ensure_ascii=False)[:300]}")
                    print(f"  {' ' * len(task)} ours    {json.dumps([sample['arguments'], sample['target']], ensure_ascii=False)[:300]}")
        failures += bad
        print(f"{task:<16} {len(ours)} docs, {bad} differ")
    print("PASS" if failures == 0 else f"FAIL: {failures} docs differ")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
