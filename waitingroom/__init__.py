"""The Redis-backed waiting room: tickets, the fair order, admission."""
