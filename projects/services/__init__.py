"""Services: the only code that changes a project's state. Import from the submodules."""
