-- The ID token of a session's sign-in, sent back to the provider as `id_token_hint` when the
-- person signs out (RP-initiated logout); cleared when the session ends or is revoked.
ALTER TABLE sessions ADD COLUMN id_token TEXT;
