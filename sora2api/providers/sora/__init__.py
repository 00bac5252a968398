"""The Sora provider: client, list-poll watcher, generation flows, and token lifecycle (AT/ST/RT)."""
