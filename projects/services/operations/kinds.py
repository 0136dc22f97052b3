"""Every operation kind, declared once: its action, the statuses that accept it, what it sets and settles to, its step.

`operation_enqueue` refuses an action the project's status does not accept and
sets the kind's transitional status; `allowed_actions` is what the API, the
dashboard's buttons and the admin offer; the worker runs the kind's step and,
on success, settles the project at the kind's `settles` status. A new kind is
one `OperationKind` here plus its step (DESIGN.md, "Adding an operation kind").
"""

from dataclasses import dataclass

from projects.models import Operation, Project
from projects.services.backups import steps as backups
from projects.services.lifecycle import steps as lifecycle
from projects.services.operations.step import Step
from projects.services.placement import steps as placement
from projects.services.pool import steps as pool
from projects.services.settings import steps as settings_steps
from projects.services.upgrades import steps as upgrades

S = Project.Status
K = Operation.Kind

# A failed project that was deleted is retried with the deleted side's actions
# (delete, restore, purge), a failed live one with the live side's: the two
# are told apart by this pseudo-status, which no row ever holds.
FAILED_DELETED = "failed (deleted)"

LIVE = frozenset({S.RUNNING, S.STOPPED, S.FAILED})
GONE = frozenset({S.DELETED, FAILED_DELETED})


@dataclass(frozen=True)
class OperationKind:
    kind: str  # Operation.Kind: what the row records
    action: str  # what a person or program asks for; create/clone and the two rotations share one
    accepts: frozenset[str]  # the statuses (or FAILED_DELETED) whose project accepts the action
    step: Step
    sets: str | None = None  # the transitional status while queued and running; None keeps the one it finds
    settles: str | None = None  # the status on success; None: as found, or as the step says
    pool: bool = False  # a warm-pool kind: only Berth's ownerless stacks, which no other kind reaches
    holds_slot: bool = True  # takes the project's one in-flight slot; a claim is recorded, never queued


DECLARED = (
    # The lifecycle (services/lifecycle/).
    OperationKind(K.CREATE, "create", frozenset({S.PROVISIONING}), lifecycle.create, sets=S.PROVISIONING, settles=S.RUNNING),
    OperationKind(K.START, "start", LIVE, lifecycle.start, sets=S.STARTING, settles=S.RUNNING),  # start repairs a running · missing project
    OperationKind(K.STOP, "stop", LIVE, lifecycle.stop, sets=S.STOPPING, settles=S.STOPPED),  # stop again converges too
    OperationKind(K.DELETE, "delete", LIVE | {FAILED_DELETED}, lifecycle.delete, sets=S.DELETING, settles=S.DELETED),
    OperationKind(K.RESTORE, "restore", GONE, lifecycle.restore, sets=S.RESTORING, settles=S.STOPPED),
    OperationKind(K.PURGE, "purge", GONE, lifecycle.purge, sets=S.PURGING, settles=S.PURGED),
    # Backups read a project without changing its status (services/backups/). A
    # failed project can have a backup restored into it (a restore that died, a
    # vanished volume); a purged one's final backup can still be verified.
    OperationKind(K.BACKUP, "backup", LIVE, backups.backup),
    OperationKind(K.VERIFY_BACKUP, "verify_backup", LIVE | GONE | {S.PURGED}, backups.verify_backup),
    OperationKind(K.RESTORE_BACKUP, "restore_backup", LIVE, backups.restore_backup),
    OperationKind(K.CLONE, "create", frozenset({S.PROVISIONING}), backups.clone, sets=S.PROVISIONING, settles=S.RUNNING),
    # Major-version upgrades (services/upgrades/): the upgrade reads the live
    # server's extensions, so it needs a running project; a rollback and
    # dropping the kept volume work on any live one.
    OperationKind(K.UPGRADE, "upgrade", frozenset({S.RUNNING}), upgrades.upgrade, sets=S.UPGRADING, settles=S.RUNNING),
    OperationKind(K.ROLLBACK_UPGRADE, "rollback_upgrade", LIVE, upgrades.rollback_upgrade, sets=S.UPGRADING),
    OperationKind(K.DROP_KEPT_VOLUME, "drop_kept_volume", LIVE, upgrades.drop_kept_volume),
    # Changes after creation (services/settings/): settings and memory are kept
    # on a stopped or failed project too (its next start applies them: a failed
    # one may need a bigger limit to start); restart needs a running server;
    # credentials rotate on a running or stopped one.
    OperationKind(K.RECONFIGURE, "reconfigure", LIVE, settings_steps.reconfigure),
    OperationKind(K.RESTART, "restart", frozenset({S.RUNNING}), settings_steps.restart, sets=S.STARTING, settles=S.RUNNING),
    OperationKind(K.ROTATE_PASSWORD, "rotate", frozenset({S.RUNNING, S.STOPPED}), settings_steps.rotate_password),
    OperationKind(K.ROTATE_KEYS, "rotate", frozenset({S.RUNNING, S.STOPPED}), settings_steps.rotate_keys),
    # Placement on a Swarm (services/placement/): the data goes to another node.
    OperationKind(K.MOVE, "move", frozenset({S.RUNNING, S.STOPPED}), placement.move, sets=S.RESTORING),
    # The warm pool (services/pool/): Berth's own stacks fill and drain; a
    # claim is an update of the row, recorded as a succeeded operation.
    OperationKind(K.POOL_FILL, "pool_fill", frozenset({S.PROVISIONING}), pool.pool_fill, sets=S.PROVISIONING, settles=S.POOLED, pool=True),
    OperationKind(K.POOL_DRAIN, "pool_drain", frozenset({S.POOLED, S.FAILED}), pool.pool_drain, sets=S.PURGING, settles=S.PURGED, pool=True),
    OperationKind(K.CLAIM, "claim", frozenset(), pool.claim, pool=True, holds_slot=False),
)
KINDS: dict[str, OperationKind] = {declared.kind: declared for declared in DECLARED}


def project_place(project: Project) -> str:
    """The status the declarations are read against: a failed, deleted project is FAILED_DELETED."""
    return FAILED_DELETED if project.status == S.FAILED and project.is_deleted else project.status


def allowed_actions(project: Project) -> frozenset[str]:
    """The actions this project's status accepts (see DESIGN.md, State)."""
    place = project_place(project)
    return frozenset(k.action for k in DECLARED if k.pool == project.is_pooled and place in k.accepts)
