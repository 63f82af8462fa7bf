-- An engineer's token speaks for one person: their own usage, findings and keys.
ALTER TABLE viewer_tokens ADD COLUMN user_name TEXT;
