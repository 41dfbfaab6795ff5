"""Write (or check) each role's README.md from its meta/argument_specs.yml.

    python scripts/role_readme.py            # rewrite roles/*/README.md
    python scripts/role_readme.py --check    # exit 1 when a README is out of step (make test runs this)

The argument specs are the one typed source of a role's variables; the README is
generated from them so the two can never disagree.
"""

from __future__ import annotations

import glob
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKUP = re.compile(r'\b([OVMCRI]|RV)\(([^)]*)\)')


def plain(text):
    """Ansible semantic markup (O(), V(), M(), C(), RV(), I()) as Markdown code."""
    return MARKUP.sub(lambda m: '`%s`' % m.group(2), ' '.join(text) if isinstance(text, list) else str(text))


def render_default(option):
    if 'default' not in option:
        return '*required*' if option.get('required') else ''
    value = option['default']
    return '`%s`' % (yaml.safe_dump(value, default_flow_style=True).strip().replace('...', '').strip()
                     if not isinstance(value, str) else (value if value else '""'))


def render(role, specs):
    lines = ['# Role `engineroom.maintenance.%s`' % role, '',
             '<!-- Generated from meta/argument_specs.yml by scripts/role_readme.py: edit the specs, not this file. -->',
             '']
    for entry, spec in specs['argument_specs'].items():
        title = 'Entry point `%s`' % entry
        lines += ['## %s: %s' % (title, plain(spec.get('short_description', ''))), '']
        if spec.get('description'):
            lines += [plain(spec['description']), '']
        usage = 'engineroom.maintenance.%s' % role
        lines += ['```yaml', '- ansible.builtin.include_role:', '    name: %s' % usage]
        if entry != 'main':
            lines.append('    tasks_from: %s' % entry)
        lines += ['```', '']
        options = spec.get('options') or {}
        if options:
            lines += ['| variable | type | default | description |', '| --- | --- | --- | --- |']
            for name, option in options.items():
                kind = option.get('type', 'str')
                if option.get('elements'):
                    kind += ' of %s' % option['elements']
                if option.get('choices'):
                    kind += ' (%s)' % ', '.join(str(c) for c in option['choices'])
                description = plain(option.get('description', '')).replace('|', '\\|')
                lines.append('| `%s` | %s | %s | %s |' % (name, kind, render_default(option), description))
            lines.append('')
    return '\n'.join(lines).rstrip() + '\n'


def main(argv):
    check = '--check' in argv
    stale = []
    for specs_path in sorted(glob.glob(os.path.join(ROOT, 'roles', '*', 'meta', 'argument_specs.yml'))):
        role_dir = os.path.dirname(os.path.dirname(specs_path))
        with open(specs_path) as handle:
            text = render(os.path.basename(role_dir), yaml.safe_load(handle))
        readme = os.path.join(role_dir, 'README.md')
        current = None
        if os.path.exists(readme):
            with open(readme) as handle:
                current = handle.read()
        if current != text:
            stale.append(os.path.relpath(readme, ROOT))
            if not check:
                with open(readme, 'w') as handle:
                    handle.write(text)
    if check and stale:
        print('out of step with meta/argument_specs.yml: %s (run: python scripts/role_readme.py)' % ', '.join(stale))
        return 1
    print('%s: %s' % ('stale' if check else 'written', ', '.join(stale) or 'none'))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
