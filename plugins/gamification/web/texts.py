"""Every word the chat pages and their buttons show, in one place, per language.

Placeholders are filled with `str.format`; values are escaped by the page code, never here.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LANGUAGE = "en"

EN: Mapping[str, str] = {
    "title_board": "Leaderboard",
    "title_profile": "{name}",
    "title_audit": "Admin actions",
    "period_day": "Today",
    "period_week": "This week",
    "period_month": "This month",
    "period_all": "All time",
    "periods": "Period",
    "rank": "Rank",
    "member": "Member",
    "points": "Points",
    "nobody": "No points in this period yet.",
    "balance": "Balance",
    "earned": "Earned in all",
    "level": "Level",
    "level_progress": "{left} points to level {next}",
    "streak": "Streak",
    "days": "{n} days (best {best})",
    "no_rank": "no rank yet",
    "achievements": "Achievements",
    "no_achievements": "None unlocked yet.",
    "chart": "Points per day, last {days} days",
    "chart_empty": "No points in the last {days} days",
    "audit_when": "When",
    "audit_who": "Admin",
    "audit_what": "Action",
    "audit_whom": "Member",
    "audit_detail": "Detail",
    "audit_none": "No admin actions yet.",
    "audit_link": "Admin actions",
    "back": "Back to the leaderboard",
    "skip": "Skip to the content",
    "error_401": "Sign-in needed",
    "error_401_text": (
        "This chat's pages open from the bot's button in the chat (they are not public),"
        " and the sign-in from Telegram was missing, forged or has expired. Open them again"
        " from the chat."
    ),
    "error_403": "Not for you",
    "error_403_text": "Only members of this chat can see its pages.",
    "error_403_admin_text": "Only this chat's admins can see its admin actions.",
    "error_404": "Not found",
    "error_404_text": "There is no such page: the chat or the member has no points here.",
    "error_503": "Try again shortly",
    "error_503_text": "The points ledger or Telegram did not answer in time.",
    "app_title": "Points",
    "app_opening": "Opening the leaderboard…",
    "app_outside": "Open this page from the bot's button in a Telegram chat.",
}

RU: Mapping[str, str] = {
    "title_board": "Таблица лидеров",
    "title_profile": "{name}",
    "title_audit": "Действия админов",
    "period_day": "Сегодня",
    "period_week": "Эта неделя",
    "period_month": "Этот месяц",
    "period_all": "За всё время",
    "periods": "Период",
    "rank": "Место",
    "member": "Участник",
    "points": "Очки",
    "nobody": "За этот период очков пока нет.",
    "balance": "Баланс",
    "earned": "Заработано всего",
    "level": "Уровень",
    "level_progress": "до уровня {next}: {left} очк.",
    "streak": "Серия",
    "days": "дней подряд: {n} (рекорд {best})",
    "no_rank": "пока без места",
    "achievements": "Достижения",
    "no_achievements": "Пока ни одного.",
    "chart": "Очки по дням за последние {days} дней",
    "chart_empty": "Ни одного очка за последние {days} дней",
    "audit_when": "Когда",
    "audit_who": "Админ",
    "audit_what": "Действие",
    "audit_whom": "Участник",
    "audit_detail": "Подробности",
    "audit_none": "Действий админов пока нет.",
    "audit_link": "Действия админов",
    "back": "К таблице лидеров",
    "skip": "К содержимому",
    "error_401": "Нужен вход",
    "error_401_text": (
        "Страницы этого чата открываются кнопкой бота в самом чате (они не публичные),"
        " а вход из Telegram отсутствует, подделан или устарел. Откройте их снова из чата."
    ),
    "error_403": "Нет доступа",
    "error_403_text": "Страницы этого чата видят только его участники.",
    "error_403_admin_text": "Действия админов видят только админы этого чата.",
    "error_404": "Не найдено",
    "error_404_text": "Такой страницы нет: у чата или участника здесь нет очков.",
    "error_503": "Попробуйте чуть позже",
    "error_503_text": "Журнал очков или Telegram не ответили вовремя.",
    "app_title": "Очки",
    "app_opening": "Открываю таблицу лидеров…",
    "app_outside": "Откройте эту страницу кнопкой бота в чате Telegram.",
}

ES: Mapping[str, str] = {
    "title_board": "Clasificación",
    "title_profile": "{name}",
    "title_audit": "Acciones de los admins",
    "period_day": "Hoy",
    "period_week": "Esta semana",
    "period_month": "Este mes",
    "period_all": "Siempre",
    "periods": "Periodo",
    "rank": "Puesto",
    "member": "Miembro",
    "points": "Puntos",
    "nobody": "Todavía no hay puntos en este periodo.",
    "balance": "Saldo",
    "earned": "Ganado en total",
    "level": "Nivel",
    "level_progress": "{left} puntos para el nivel {next}",
    "streak": "Racha",
    "days": "{n} días (mejor {best})",
    "no_rank": "aún sin puesto",
    "achievements": "Logros",
    "no_achievements": "Ninguno todavía.",
    "chart": "Puntos por día, últimos {days} días",
    "chart_empty": "Ningún punto en los últimos {days} días",
    "audit_when": "Cuándo",
    "audit_who": "Admin",
    "audit_what": "Acción",
    "audit_whom": "Miembro",
    "audit_detail": "Detalle",
    "audit_none": "Todavía no hay acciones de admins.",
    "audit_link": "Acciones de los admins",
    "back": "Volver a la clasificación",
    "skip": "Ir al contenido",
    "error_401": "Hay que iniciar sesión",
    "error_401_text": (
        "Las páginas de este chat se abren con el botón del bot en el chat (no son públicas),"
        " y el inicio de sesión de Telegram falta, es falso o ha caducado. Ábrelas de nuevo"
        " desde el chat."
    ),
    "error_403": "No es para ti",
    "error_403_text": "Solo los miembros de este chat pueden ver sus páginas.",
    "error_403_admin_text": "Solo los admins de este chat pueden ver sus acciones.",
    "error_404": "No encontrado",
    "error_404_text": "No existe esa página: el chat o el miembro no tiene puntos aquí.",
    "error_503": "Vuelve a intentarlo en un momento",
    "error_503_text": "El registro de puntos o Telegram no respondieron a tiempo.",
    "app_title": "Puntos",
    "app_opening": "Abriendo la clasificación…",
    "app_outside": "Abre esta página con el botón del bot en un chat de Telegram.",
}

TEXTS: Mapping[str, Mapping[str, str]] = {"en": EN, "ru": RU, "es": ES}


def language_of(code: str | None) -> str:
    """The page language for an IETF tag such as "ru" or "es-MX"; English otherwise."""
    base = (code or "").split("-")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def text(language: str, key: str, **values: object) -> str:
    table = TEXTS.get(language, EN)
    template = table.get(key) or EN[key]
    return template.format(**values) if values else template
