"""bootbot: the command line and, later, the list bot."""
