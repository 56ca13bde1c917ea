"""Built-in ABI ops. Each module is imported only when one of its ops is first called."""
