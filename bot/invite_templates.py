"""HTML of the public invite page: plain server-rendered forms, no script, one inline style.

Rendered with Jinja's autoescaping (flask.render_template_string), so every value is escaped.
The style's SHA-256 goes into the Content-Security-Policy, so nothing else can be styled in.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;
color:#1d1c1d;margin:0;padding:2rem 1rem;line-height:1.45}
main{max-width:34rem;margin:0 auto;background:#fff;border:1px solid #dcdde1;border-radius:8px;
padding:1.75rem 2rem}
h1{font-size:1.4rem;margin:0 0 .75rem}
p.lead{margin:0 0 1.25rem;color:#454245}
dl.preset{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1.5rem;
padding:.75rem 1rem;background:#f8f8fa;border-radius:6px}
dl.preset dt{font-weight:600}dl.preset dd{margin:0;word-break:break-word}
.field{margin:0 0 1.1rem}
label{display:block;font-weight:600;margin:0 0 .3rem}
input[type=text],input[type=password]{box-sizing:border-box;width:100%;font-size:1rem;
padding:.55rem .65rem;border:1px solid #868686;border-radius:4px}
input[aria-invalid=true]{border-color:#c0182e;border-width:2px}
.hint{font-size:.875rem;color:#616061;margin:.3rem 0 0}
.error{color:#c0182e;font-weight:600;font-size:.9rem;margin:.35rem 0 0}
ul.policy{font-size:.875rem;color:#454245;margin:.4rem 0 0;padding-left:1.2rem}
button{font-size:1rem;font-weight:600;background:#007a5a;color:#fff;border:0;border-radius:4px;
padding:.6rem 1.4rem;cursor:pointer}
button:focus,input:focus{outline:3px solid #1264a3;outline-offset:1px}
.status{font-size:.9rem;color:#616061;margin-top:1.5rem}
"""


@cache
def style_hash() -> str:
    """The CSP source that allows exactly STYLE, e.g. 'sha256-...'."""
    digest = hashlib.sha256(STYLE.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }} · RoleUp</title>
<style>{{ style|safe }}</style>
</head>
<body>
<main>
"""
_FOOT = """
</main>
</body>
</html>
"""

FORM = (
    _HEAD
    + """<h1>Choose your AWS sign-in</h1>
<p class="lead">You were invited to an AWS account. Choose the username and the initial
password you will sign in with. An approver checks the request before the account is made.</p>
<dl class="preset">
<dt>Integration</dt><dd>{{ invite.integration }}</dd>
<dt>Groups</dt><dd>{{ invite.groups|join(", ") if invite.groups else "none" }}</dd>
<dt>Managed policies</dt>
<dd>{{ policy_names|join(", ") if policy_names else "none" }}</dd>
<dt>Link expires</dt><dd>{{ expires }}</dd>
{% if account_expires %}<dt>Account expires</dt>
<dd>{{ account_expires }} (00:00 UTC)</dd>{% endif %}
</dl>
<form method="post" action="" autocomplete="off" novalidate>
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<div class="field">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{ username }}" maxlength="64"
 autocapitalize="none" spellcheck="false" required aria-describedby="username-hint
 {%- if errors.username %} username-error{% endif %}"
 {%- if errors.username %} aria-invalid="true"{% endif %}>
<p class="hint" id="username-hint">1 to 64 characters: letters, numbers and + = , . @ _ -</p>
{% if errors.username %}<p class="error" id="username-error" role="alert">
{{- errors.username }}</p>{% endif %}
</div>
<div class="field">
<label for="password">Initial password</label>
<input type="password" id="password" name="password" maxlength="{{ max_password }}"
 autocomplete="new-password" required aria-describedby="password-policy
 {%- if errors.password %} password-error{% endif %}"
 {%- if errors.password %} aria-invalid="true"{% endif %}>
{% if errors.password %}<p class="error" id="password-error" role="alert">
{{- errors.password }}</p>{% endif %}
<ul class="policy" id="password-policy" aria-label="Password policy">
{% for rule in rules %}<li>{{ rule }}</li>
{% endfor %}</ul>
</div>
<div class="field">
<label for="confirm">Confirm initial password</label>
<input type="password" id="confirm" name="confirm" maxlength="{{ max_password }}"
 autocomplete="new-password" required
 {%- if errors.confirm %} aria-invalid="true" aria-describedby="confirm-error"{% endif %}>
{% if errors.confirm %}<p class="error" id="confirm-error" role="alert">
{{- errors.confirm }}</p>{% endif %}
</div>
{% if errors.form %}<p class="error" role="alert">{{ errors.form }}</p>{% endif %}
<button type="submit">Send for approval</button>
</form>
"""
    + _FOOT
)

DONE = (
    _HEAD
    + """<h1>Request sent</h1>
<p class="lead">Your request for the username <strong>{{ username }}</strong> in
{{ integration }} is waiting for approval.</p>
<p>{% if in_slack %}You will get a message in Slack when your account is ready.
{% else %}The person who invited you will tell you when your account is ready.{% endif %}
At the first sign-in you must change the initial password.</p>
<p class="status">This link has now been used and no longer works. You can close this page.</p>
"""
    + _FOOT
)

PROBLEM = (
    _HEAD
    + """<h1>{{ title }}</h1>
<p class="lead">{{ message }}</p>
"""
    + _FOOT
)
