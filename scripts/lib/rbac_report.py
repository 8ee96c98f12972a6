#!/usr/bin/env python3
"""Lists the RBAC rules of the components' addons that no call in the tests
used. The test API server checks every call a component makes against its
addon's rules (tests/it/apiserver/rbac.rs), refuses the ones no rule allows
(failing the test), and writes the rules that allowed a call to
<dir>/<pid>.json. Usage: rbac_report.py DIR. Prints; exits 0."""
import json
import pathlib
import sys


def main() -> int:
    d = pathlib.Path(sys.argv[1])
    files = sorted(d.glob("*.json")) if d.is_dir() else []
    if not files:
        print("RBAC report: no component calls were recorded")
        return 0
    rules: dict[str, list[str]] = {}
    used: set[tuple[str, str]] = set()
    for f in files:
        data = json.loads(f.read_text())
        for comp, srcs in data["rules"].items():
            rules.setdefault(comp, srcs)
        used.update((c, s) for c, s in data["used"])
    print("RBAC report: rules of each component's addon, against the calls its tests made")
    for comp, srcs in sorted(rules.items()):
        unused = [s for s in srcs if (comp, s) not in used]
        print(f"  {comp}: {len(srcs) - len(unused)} of {len(srcs)} rules used")
        for s in unused:
            print(f"    unused: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
