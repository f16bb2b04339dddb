-- An app's own rate limits for its keys ({keyPerSecond, keyBurst}); null: the deployment's defaults.
ALTER TABLE apps ADD COLUMN limits jsonb;
