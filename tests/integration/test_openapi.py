"""docs/openapi.yaml is a valid OpenAPI 3.0 document, and the documents in it and in
docs/controller-api.md match its schemas (openapi_check.py says how)."""

import json
import re
import unittest

from openapi_check import SPEC_PATH, load_spec, schema_errors, structure_problems

API_DOC = SPEC_PATH.parent / "controller-api.md"


def json_blocks(markdown):
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", markdown, re.S)]


class OpenApi(unittest.TestCase):
    def setUp(self):
        self.spec = load_spec()

    def test_the_spec_has_the_structure_openapi_3_0_requires(self):
        self.assertEqual(structure_problems(self.spec), [])

    def test_the_structure_check_catches_mistakes(self):
        broken = load_spec()
        broken["openapi"] = "3.1.0"
        get = broken["paths"]["/v1/hosts/{host}/maintenance"]["get"]
        get["responses"]["200"]["content"]["application/json"]["schema"] = {
            "$ref": "#/components/schemas/Nothing"}
        broken["components"]["schemas"]["Window"]["properties"]["start"]["type"] = "null"
        problems = "\n".join(structure_problems(broken))
        self.assertIn("openapi must be 3.0.x", problems)
        self.assertIn("#/components/schemas/Nothing does not resolve", problems)
        self.assertIn("type 'null'", problems)

    def test_the_spec_examples_are_valid_desired_states(self):
        get = self.spec["paths"]["/v1/hosts/{host}/maintenance"]["get"]
        examples = get["responses"]["200"]["content"]["application/json"]["examples"]
        self.assertTrue(examples)
        for name, example in examples.items():
            with self.subTest(name):
                self.assertEqual(schema_errors(self.spec, "DesiredState", example["value"]), [])

    def test_the_documents_in_controller_api_md_match_the_schemas(self):
        desired, report = json_blocks(API_DOC.read_text())[:2]
        self.assertEqual(schema_errors(self.spec, "DesiredState", desired), [])
        self.assertEqual(schema_errors(self.spec, "StatusReport", report), [])

    def test_the_schemas_refuse_what_the_agent_refuses(self):
        desired = json_blocks(API_DOC.read_text())[0]
        for field, value in (("state", "paused"), ("removal", "yes"), ("acks", {"web1": "maybe"}),
                             ("destinations", ["b", "b"]), ("window", {"start": "soon"})):
            with self.subTest(field):
                self.assertNotEqual(schema_errors(self.spec, "DesiredState", dict(desired, **{field: value})),
                                    [])


if __name__ == "__main__":
    unittest.main()
