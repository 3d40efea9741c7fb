"""Money in, energy out, money to the seller, exactly once: trades paid by M-Pesa.

``ledger`` keeps each trade's durable state machine and every callback as received; ``desk``
opens trades (chain, then STK Push); ``worker`` runs the rounds that move them on, one phase
after another: ``confirm`` (the STK Query says whether the buyer paid), ``settle`` (settle or
cancel on chain in batches, and finish what a crash left half-opened), ``payout`` (pay the
seller by B2C, and ask after results that never came). ``gateway`` speaks to Daraja, ``vault``
keeps phone numbers encrypted, ``api`` serves the routes and ``wiring`` builds it all.
"""
