"""What every route shares: the error shape and its handlers (``errors``), the dependencies
routes take (``deps``), the probes operators poll (``probes``) and the documentation page
(``docs``)."""
