"""The dashboard (HTML + HTMX): thin views over the same services as the JSON API, a module per page.

Each view renders one template; an HTMX request gets one of its partials
(`"template.html#partial"`, django-htmx's example pattern). Every form also
works as a plain POST without JavaScript, so each view answers both.

Views parse input, check who may see the project, call one service and render.
They never call the runtime: what the engine says comes through
projects/services/fleet/inspect.py, and never while rendering a list.
"""

