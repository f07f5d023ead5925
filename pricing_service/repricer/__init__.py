"""The repricer: turns input changes, window boundaries and rule reloads into published
price schedules."""
