"""Renders or lints a chart with real Helm (helm-python-sdk), for the tests.

    render.py render CHART RELEASE NAMESPACE VALUES_JSON   -> the manifests, one YAML stream
    render.py lint CHART VALUES_JSON                        -> lint errors as JSON, exit 1 if any
"""
import json
import sys

import helm_python
from helm_python import Chart


def main(argv):
    if argv[1] == "render":
        _, _, chart, release, namespace, values = argv
        rendered = Chart.load(chart).render(json.loads(values), name=release, namespace=namespace)
        for path in sorted(rendered):
            text = rendered[path].strip()
            if text:
                sys.stdout.write(f"---\n# Source: {path}\n{text}\n")
        return 0
    if argv[1] == "lint":
        _, _, chart, values = argv
        result = helm_python.lint(chart, json.loads(values), strict=True)
        json.dump(result, sys.stdout)
        return 1 if result.get("errors") else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
