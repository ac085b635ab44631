"""The SMS bridge: Alertmanager webhooks in, one SMS per recipient out through Twilio."""
