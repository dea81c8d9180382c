"""The ECS categorisation of CloudTrail events, as the integration's pipeline table gives it.

Pure data: `CATEGORIES[event.action] = (event.category, event.type)`. The pipeline first sets
`event.kind: event` and `event.type: [info]`, then overrides both from this table
(`default.yml`, the script tagged "Add ECS categorization"); actions not in it keep `info`
and get no category.
"""

from __future__ import annotations

_IAM = {
    "group,change": "AddUserToGroup AttachGroupPolicy DeleteGroupPolicy DetachGroupPolicy "
    "PutGroupPolicy RemoveUserFromGroup UpdateGroup",
    "group,creation": "CreateGroup",
    "group,deletion": "DeleteGroup",
    "group,info": "GetGroup GetGroupPolicy ListAttachedGroupPolicies ListGroupPolicies ListGroups",
    "user,change": "AttachUserPolicy ChangePassword CreateAccessKey CreateVirtualMFADevice "
    "DeactivateMFADevice DeleteAccessKey DeleteSSHPublicKey DeleteUserPermissionsBoundary "
    "DeleteUserPolicy DeleteVirtualMFADevice DetachUserPolicy EnableMFADevice "
    "PutUserPermissionsBoundary PutUserPolicy TagUser UntagUser UpdateAccessKey "
    "UpdateLoginProfile UpdateSSHPublicKey UpdateUser",
    "user,creation": "CreateUser",
    "user,deletion": "DeleteUser",
    "user,info": "GetUser GetUserPolicy ListAttachedUserPolicies ListGroupsForUser "
    "ListUserPolicies ListUsers ListUserTags",
    "admin,creation": "CreateKeyPair",
    "admin,change": "SetDefaultPolicyVersion SetSecurityTokenServicePreferences "
    "UpdateAccountPasswordPolicy UpdateRole",
}
# The categorisation script's table: event.action -> (event.category, event.type).
CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    **{
        action: (["iam"], types.split(","))
        for types, actions in _IAM.items()
        for action in actions.split()
    },
    "AssumeRole": (["authentication"], ["info"]),
    "ConsoleLogin": (["authentication"], ["info"]),
    "CreateBucket": (["file"], ["creation"]),
    "DeleteBucket": (["file"], ["deletion"]),
    # Newer pipelines (PutObject confirmed by a published output). The transpiled copy of the
    # newest table gives DeleteObject the type `delete`; ECS only allows `deletion`.
    "GetObject": (["file"], ["info"]),
    "HeadObject": (["file"], ["info"]),
    "ListObjects": (["file"], ["info"]),
    "ListBuckets": (["file"], ["info"]),
    "PutObject": (["file"], ["change"]),
    "DeleteObject": (["file"], ["deletion"]),
}
