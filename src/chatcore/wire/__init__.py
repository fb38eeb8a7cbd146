"""The wire protocol, a dialect per connection: JSON text (`jsontext`), what a dialect is (`dialect`), the
seed's (`seed`, frozen) and version 2 (`v2`), and how an ``init`` chooses one (`dialects`). Nothing here holds
state or knows of rooms."""
