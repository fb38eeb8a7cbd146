"""Applications the hub can run besides the chat core: echo (for conformance tests of a transport)."""
