"""The composition root for the worker side: config → store, models, story index → Runtime."""

from __future__ import annotations

import os
from datetime import datetime

from bot.config import Config
from bot.pipeline import Runtime
from bot.scoring import TopicScorer
from bot.store import Store
from bot.stories import StoryIndex
from bot.topic_models import load_or_train


def story_index(config: Config) -> StoryIndex:
    if config.stories.similarity is not None:
        return StoryIndex(window=config.stories.window, threshold=config.stories.similarity)
    return StoryIndex(window=config.stories.window)


def build_runtime(config: Config, now: datetime, store: Store | None = None) -> Runtime:
    store = store or Store.open(config.database_url())
    store.ensure_sources([(s.name, s.url) for s in config.sources])
    stories = story_index(config)
    # Warm the index so a report arriving after a restart still joins yesterday's story.
    for row in store.recent_items(now - config.stories.window):
        stories.add_known(row.id, row.story_id, row.title, row.text, row.published)
    return Runtime(
        config=config,
        store=store,
        scorer=TopicScorer(load_or_train(config, store=store), config.active_topics),
        stories=stories,
        console_fallback=not os.environ.get("SLACK_BOT_TOKEN"),
    )
