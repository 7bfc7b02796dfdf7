"""Admin mutations: stores and API keys, for the admin token only."""

from __future__ import annotations

import strawberry

from ordergraph.domain import validation as check
from ordergraph.domain.commands import CreateApiKey, CreateStore
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.model import BackorderPolicy
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.mutations import checked, failed, user_errors
from ordergraph.schema.inputs import CreateApiKeyInput, CreateStoreInput
from ordergraph.schema.payloads import CreateApiKeyPayload, CreateStorePayload, RevokeApiKeyPayload
from ordergraph.schema.types import ApiKeyType, Ctx, StoreType

MAX_KEY_STORES = 100


async def _key(ctx: Context, key_id: int) -> ApiKeyType | None:
    key = await ctx.units.admin.api_key(key_id)
    return ApiKeyType(_key=key) if key else None


async def create_store(info: Ctx, input: CreateStoreInput) -> CreateStorePayload:
    ctx = info.context
    await ctx.require_admin()
    cmd = CreateStore(
        handle=input.handle,
        name=input.name,
        currency_code=input.currency_code,
        timezone=input.timezone,
        default_policy=input.default_backorder_policy or BackorderPolicy.DENY,
    )
    try:
        created = await ctx.units.admin.create_store(cmd)
    except DomainError as err:
        return CreateStorePayload(
            store=None, api_key=None, token=None, user_errors=user_errors(err.problems)
        )
    store = await ctx.loaders.store.load(created.store_id)
    return CreateStorePayload(
        store=StoreType(_store=store) if store else None,
        api_key=await _key(ctx, created.api_key_id),
        token=created.token,
        user_errors=[],
    )


async def create_api_key(info: Ctx, input: CreateApiKeyInput) -> CreateApiKeyPayload:
    ctx = info.context
    await ctx.require_admin()
    store_gids = [str(s) for s in input.store_ids]
    if problems := checked(lambda: check.list_length(store_gids, MAX_KEY_STORES, "storeIds")):
        return CreateApiKeyPayload(api_key=None, token=None, user_errors=user_errors(problems))
    store_ids = [ids.store_id(g) for g in store_gids]
    if any(s is None for s in store_ids):
        problems = failed(ErrorCode.NOT_FOUND, "store not found", "storeIds")
        return CreateApiKeyPayload(api_key=None, token=None, user_errors=user_errors(problems))
    cmd = CreateApiKey(
        name=input.name,
        store_ids=[s for s in store_ids if s is not None],
        scopes=[s.value for s in input.scopes],
    )
    try:
        created = await ctx.units.admin.create_api_key(cmd)
    except DomainError as err:
        return CreateApiKeyPayload(api_key=None, token=None, user_errors=user_errors(err.problems))
    return CreateApiKeyPayload(
        api_key=await _key(ctx, created.api_key_id), token=created.token, user_errors=[]
    )


async def revoke_api_key(info: Ctx, id: strawberry.ID) -> RevokeApiKeyPayload:
    ctx = info.context
    await ctx.require_admin()
    found = ids.decode(str(id), "ApiKey")
    if found is None:
        problems = failed(ErrorCode.NOT_FOUND, "api key not found", "id")
        return RevokeApiKeyPayload(api_key=None, user_errors=user_errors(problems))
    try:
        key_id = await ctx.units.admin.revoke_api_key(found[1][0])
    except DomainError as err:
        return RevokeApiKeyPayload(api_key=None, user_errors=user_errors(err.problems))
    ctx.key_revoked(key_id)
    return RevokeApiKeyPayload(api_key=await _key(ctx, key_id), user_errors=[])
