"""Seeded public users and posts for the feed, profile and search endpoints."""

from __future__ import annotations

import random

from .ids import IdMaker
from .records import Post, Profile

_USERS = (
    ("kittyfan", "Kitty Fan", "cats, mostly", True),
    ("skyline_dreams", "Skyline Dreams", "city timelapses", False),
    ("retro.wave", "Retro Wave", "synths and sunsets", True),
    ("deepsea", "Deep Sea", "things that glow", False),
    ("marco_films", "Marco Films", "short films every day", True),
    ("lunabakes", "Luna Bakes", "cakes that should not exist", False),
    ("pixel.knight", "Pixel Knight", "8-bit adventures", True),
    ("wanderlust", "Wanderlust", "places I have not been", False),
    ("dino_dad", "Dino Dad", "prehistoric parenting", True),
    ("neon_noir", "Neon Noir", "rainy streets", False),
    ("gardengnome", "Garden Gnome", "tiny worlds", False),
    ("astro.ana", "Astro Ana", "space, but cozy", True),
)
_TEXTS = (
    "a cat surfing a wave at sunset",
    "timelapse of a city waking up",
    "a dragon made of origami",
    "jellyfish drifting through neon fog",
    "a robot learning to paint",
    "a cake that turns into a castle",
)
POSTS_PER_USER = 3


def seed_feed(ids: IdMaker, rng: random.Random, now: float) -> tuple[list[Profile], list[Post]]:
    """A dozen users with three posts each, spread over the last two days."""
    profiles: list[Profile] = []
    posts: list[Post] = []
    for username, display, description, can_cameo in _USERS:
        profile = Profile(
            user_id=ids.user(),
            username=username,
            display_name=display,
            description=description,
            follower_count=rng.randrange(10, 50_000),
            following_count=rng.randrange(0, 500),
            likes_received_count=rng.randrange(0, 200_000),
            remix_count=rng.randrange(0, 300),
            cameo_count=rng.randrange(0, 40) if can_cameo else 0,
            can_cameo=can_cameo,
            verified=rng.random() < 0.3,
            character_id=ids.character() if can_cameo else None,
        )
        profiles.append(profile)
        for _ in range(POSTS_PER_USER):
            landscape = rng.random() < 0.5
            posts.append(
                Post(
                    id=ids.post(),
                    user_id=profile.user_id,
                    generation_id=ids.generation(),
                    text=rng.choice(_TEXTS),
                    posted_at=round(now - rng.uniform(60, 2 * 86400), 3),
                    width=1280 if landscape else 720,
                    height=720 if landscape else 1280,
                    n_frames=rng.choice((300, 450)),
                    like_count=rng.randrange(0, 10_000),
                    view_count=rng.randrange(100, 500_000),
                    remix_count=rng.randrange(0, 200),
                )
            )
    return profiles, posts
