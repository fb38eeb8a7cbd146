"""The wire protocol: JSON text (`jsontext`) and the seed's events (`seed`, frozen)."""
