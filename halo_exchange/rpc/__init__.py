"""The XML-RPC surfaces: translation and validation only; no business state lives here."""
