#!/usr/bin/env python3
"""Checks a served JSON body against a schema of an OpenAPI 3.1 document, strictly: every object
schema that lists properties is closed (additionalProperties false), so a field that is served but
not documented fails as surely as a documented one that is missing or has another type.

Usage: match_schema.py DOCUMENT SCHEMA < body.json   (SCHEMA "[]Name" is an array of Name)
"""
import json
import sys

from openapi_schema_validator import OAS31Validator


def close(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            close(value)
    elif isinstance(node, list):
        for value in node:
            close(value)


def main():
    with open(sys.argv[1]) as f:
        document = json.load(f)
    components = document["components"]
    close(components)
    name = sys.argv[2]
    schema = {"components": components}
    if name.startswith("[]"):
        schema["type"] = "array"
        schema["items"] = {"$ref": "#/components/schemas/" + name[2:]}
    else:
        schema["$ref"] = "#/components/schemas/" + name
    body = json.load(sys.stdin)
    validator = OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=str)
    for error in errors:
        print(f"{list(error.absolute_path)}: {error.message}")
    sys.exit(1 if errors else 0)


main()
