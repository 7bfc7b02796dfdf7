"""Webhook mutations (WEBHOOKS scope): create, update, delete, rotate the secret, redeliver.

A key sees and touches only the subscriptions of stores it may use: another store's
subscription ID is answered as not found, like an unknown one.
"""

from __future__ import annotations

import strawberry

from ordergraph.domain.errors import DomainError, ErrorCode, Problem
from ordergraph.domain.paging import BadPageRequest, decode_cursor
from ordergraph.domain.webhooks import (
    ROTATION_OVERLAP,
    Target,
    WebhookPort,
    WebhookRecord,
    check_skus,
    check_topics,
    check_url,
    host_is_literal_address,
    new_secret,
    parse_event_id,
    unsafe_target,
)
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.mutations import failed, store_for, user_errors
from ordergraph.resolvers.webhook_reads import port
from ordergraph.schema.types import Ctx
from ordergraph.schema.webhooks import (
    CreateWebhookSubscriptionInput,
    CreateWebhookSubscriptionPayload,
    DeleteWebhookSubscriptionPayload,
    RedeliverWebhookEventInput,
    RedeliverWebhookInput,
    RedeliverWebhookPayload,
    RotateWebhookSecretPayload,
    UpdateWebhookSubscriptionInput,
    UpdateWebhookSubscriptionPayload,
    WebhookSubscriptionType,
)

SCOPE = "WEBHOOKS"


def _not_found(field: str = "id") -> list[Problem]:
    return failed(ErrorCode.NOT_FOUND, "webhook subscription not found", field)


async def _target(webhooks: WebhookPort, url: str) -> Target:
    """The URL checked: its form, https, and (unless private targets are allowed) the
    addresses its host resolves to now. DomainError with INVALID or UNSAFE_TARGET."""
    target = check_url(url, allow_http=webhooks.allow_private)
    if webhooks.allow_private:
        return target
    host = target.host.strip("[]")
    addresses = (
        [host] if host_is_literal_address(host) else await webhooks.resolve(host, target.port)
    )
    refused = unsafe_target(target.host, addresses)
    if refused is not None:
        raise DomainError([refused])
    return target


def _after_seq(cursor: str, field: str) -> int:
    try:
        return int(decode_cursor(cursor, 1, None, [int], field=field)[0])
    except BadPageRequest:
        raise DomainError.one(ErrorCode.INVALID, "not an event cursor", [field]) from None


async def _owned(ctx: Context, gid: str) -> tuple[int, int] | None:
    """(store id, subscription id) of a subscription ID the caller may manage, else None."""
    found = ids.scoped_id(gid, "WebhookSubscription")
    if found is None:
        return None
    store_id = await ctx.usable_store_id(found[0], SCOPE)
    return found if store_id is not None else None


async def create_webhook_subscription(
    info: Ctx, input: CreateWebhookSubscriptionInput
) -> CreateWebhookSubscriptionPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), SCOPE)
    webhooks = port(ctx)
    if store_id is None:
        problems = failed(ErrorCode.NOT_FOUND, "store not found", "storeId")
        return CreateWebhookSubscriptionPayload(
            webhook_subscription=None, secret=None, user_errors=user_errors(problems)
        )
    try:
        topics = check_topics([t.name for t in input.topics])
        target = await _target(webhooks, input.url)
        after = _after_seq(input.after, "after") if input.after is not None else None
        skus = check_skus(input.skus, webhooks.max_skus) if input.skus is not None else None
        created = await webhooks.create(store_id, target.url, topics, after, new_secret(), skus)
    except DomainError as err:
        return CreateWebhookSubscriptionPayload(
            webhook_subscription=None, secret=None, user_errors=user_errors(err.problems)
        )
    return CreateWebhookSubscriptionPayload(
        webhook_subscription=WebhookSubscriptionType(_record=created.webhook),
        secret=created.secret,
        user_errors=[],
    )


async def update_webhook_subscription(
    info: Ctx, input: UpdateWebhookSubscriptionInput
) -> UpdateWebhookSubscriptionPayload:
    ctx = info.context
    key = await _owned(ctx, str(input.id))
    webhooks = port(ctx)
    if key is None:
        return UpdateWebhookSubscriptionPayload(
            webhook_subscription=None, user_errors=user_errors(_not_found())
        )
    try:
        topics = check_topics([t.name for t in input.topics]) if input.topics is not None else None
        url = (await _target(webhooks, input.url)).url if input.url is not None else None
        skus = check_skus(input.skus, webhooks.max_skus) if input.skus else None
        found = await webhooks.update(
            *key,
            url=url,
            topics=topics,
            paused=input.paused,
            skus=skus,
            clear_skus=input.skus == [],
        )
    except DomainError as err:
        return UpdateWebhookSubscriptionPayload(
            webhook_subscription=None, user_errors=user_errors(err.problems)
        )
    if found is None:
        return UpdateWebhookSubscriptionPayload(
            webhook_subscription=None, user_errors=user_errors(_not_found())
        )
    return UpdateWebhookSubscriptionPayload(
        webhook_subscription=WebhookSubscriptionType(_record=found), user_errors=[]
    )


async def delete_webhook_subscription(
    info: Ctx, id: strawberry.ID
) -> DeleteWebhookSubscriptionPayload:
    ctx = info.context
    key = await _owned(ctx, str(id))
    if key is None or not await port(ctx).delete(*key):
        return DeleteWebhookSubscriptionPayload(
            deleted_id=None, user_errors=user_errors(_not_found())
        )
    return DeleteWebhookSubscriptionPayload(deleted_id=id, user_errors=[])


async def rotate_webhook_secret(info: Ctx, id: strawberry.ID) -> RotateWebhookSecretPayload:
    ctx = info.context
    key = await _owned(ctx, str(id))
    secret = new_secret()
    found = await port(ctx).rotate(*key, secret, ROTATION_OVERLAP) if key else None
    if found is None:
        return RotateWebhookSecretPayload(
            webhook_subscription=None, secret=None, user_errors=user_errors(_not_found())
        )
    return RotateWebhookSecretPayload(
        webhook_subscription=WebhookSubscriptionType(_record=found), secret=secret, user_errors=[]
    )


def _redelivered(found: WebhookRecord | None) -> RedeliverWebhookPayload:
    if found is None:
        return RedeliverWebhookPayload(
            webhook_subscription=None, user_errors=user_errors(_not_found())
        )
    return RedeliverWebhookPayload(
        webhook_subscription=WebhookSubscriptionType(_record=found), user_errors=[]
    )


async def redeliver_webhook(info: Ctx, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
    ctx = info.context
    key = await _owned(ctx, str(input.id))
    webhooks = port(ctx)
    if key is None:
        return RedeliverWebhookPayload(
            webhook_subscription=None, user_errors=user_errors(_not_found())
        )
    try:
        found = await webhooks.redeliver(*key, _after_seq(input.after, "after"))
    except DomainError as err:
        return RedeliverWebhookPayload(
            webhook_subscription=None, user_errors=user_errors(err.problems)
        )
    return _redelivered(found)


async def redeliver_webhook_event(
    info: Ctx, input: RedeliverWebhookEventInput
) -> RedeliverWebhookPayload:
    ctx = info.context
    key = await _owned(ctx, str(input.id))
    if key is None:
        return RedeliverWebhookPayload(
            webhook_subscription=None, user_errors=user_errors(_not_found())
        )
    event = parse_event_id(str(input.event_id))
    if event is None or event[0] != key[0]:
        problems = failed(
            ErrorCode.INVALID, "not an event id of this subscription's store", "eventId"
        )
        return RedeliverWebhookPayload(webhook_subscription=None, user_errors=user_errors(problems))
    try:
        found = await port(ctx).redeliver_event(*key, event[1], event[2])
    except DomainError as err:
        return RedeliverWebhookPayload(
            webhook_subscription=None, user_errors=user_errors(err.problems)
        )
    return _redelivered(found)
