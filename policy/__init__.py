"""The dynamic-sessions policy pack (CrossGuard): `pulumi preview --policy-pack policy`.

The policies live in `policy.guardrails`; `policy/__main__.py` only serves them to the Pulumi CLI.
"""
