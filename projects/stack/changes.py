"""What a project's stack gets at its next start when Berth changes it: numbered, said on the project's page.

A stack is made from the project's record each time it comes up (spec.py), so
an existing project picks up a change to the stack at its next start, restart
or upgrade. The ones its owner can notice are listed here: the page says
which are still to come (the project has not come up since) and which came at
its last start (Project.stack_revision, stack_revised_from/at, set by
operations/step.py `running_fields`). Add a change with the next number.
"""

STACK_CHANGES: dict[int, str] = {
    1: (
        "Functions you create are no longer executable by everyone: the API's anonymous role runs one only once "
        "you grant it (GRANT EXECUTE ON FUNCTION … TO anon). Functions made before keep their grants."
    ),
    2: (
        "The GraphQL API shows each caller only what its role may use: an anonymous caller's schema (__schema "
        "included) lists only what anon was granted, the service key's what service may use."
    ),
    3: "GraphiQL is off unless the operator turns it on (BERTH_GRAPHIQL).",
    4: (
        "The database and API containers run with read-only root filesystems, and every start repairs a role "
        "that was made more than a tenant may be (the page says so if it had to)."
    ),
}
STACK_REVISION = max(STACK_CHANGES)


def stack_changes_between(after: int, upto: int = STACK_REVISION) -> list[str]:
    """The changes numbered above `after` and up to `upto`, oldest first."""
    return [text for number, text in sorted(STACK_CHANGES.items()) if after < number <= upto]
