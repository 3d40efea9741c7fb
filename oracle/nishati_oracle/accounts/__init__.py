"""Who is asking: households signed in with a code sent to their phone by SMS, operators with a
password, integrations with an API key an operator issued, each resolved to one
:class:`~nishati_oracle.accounts.principal.Principal` that every route's rule reads.

- ``sms``: Africa's Talking's SMS API (or the local simulator, chosen by name), which sends codes;
- ``codes``: the codes (6 digits, short-lived, keyed-hashed, one at a time per phone);
- ``lockouts``: wrong codes and passwords in a row, and the lockout they lead to;
- ``limits``: requests per phone and per caller address in a window;
- ``operators``: operators' passwords (argon2id);
- ``sessions``: browsers' sessions (cookies, CSRF tokens);
- ``api_keys``: integrations' keys, scoped;
- ``http``: the sign-in routes, the API key routes, and the dependency that names the principal.

Nothing a caller signs in with is stored in clear (``secrets``).
"""
