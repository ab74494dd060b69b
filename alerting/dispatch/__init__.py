"""From notification intents to delivered messages: mute, group, rate-limit into digests, outbox, retry."""
