"""Money in, energy out, money to the seller, exactly once: trades paid by M-Pesa.

``ledger`` keeps each trade's durable state machine and every callback as received; ``desk``
opens trades (chain, then STK Push); ``worker`` moves them on (confirm by STK Query, settle or
cancel on chain in batches, pay the seller by B2C) and reconciles anything left unfinished.
"""
