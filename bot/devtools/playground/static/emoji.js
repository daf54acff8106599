// Emoji shortcodes as Slack's clients show them: ":broom:" is 🧹. Every
// shortcode the bot's messages use is here (tests/test_playground_phone.py
// reads the templates and checks), plus Slack's common reactions; an
// unknown one stays as text, as in Slack.
export const EMOJI = {
  "+1": "👍", alarm_clock: "⏰", bell: "🔔", broom: "🧹", bulb: "💡",
  busts_in_silhouette: "👥", calendar: "📆", checkered_flag: "🏁", clock3: "🕒",
  desktop_computer: "🖥️", eyes: "👀", gear: "⚙️", ghost: "👻", grey_question: "❔",
  heavy_check_mark: "✔️", heavy_minus_sign: "➖", see_no_evil: "🙈", hourglass: "⌛", hourglass_flowing_sand: "⏳", inbox_tray: "📥", outbox_tray: "📤",
  information_source: "ℹ️", large_green_circle: "🟢", leftwards_arrow_with_hook: "↩️",
  lock: "🔒", no_entry: "⛔", ocean: "🌊", raising_hand: "🙋", red_circle: "🔴", rewind: "⏪",
  arrow_right: "➡️", rocket: "🚀", satellite_antenna: "📡", scissors: "✂️", speech_balloon: "💬",
  stopwatch: "⏱️", tada: "🎉", test_tube: "🧪", thumbsup: "👍",
  twisted_rightwards_arrows: "🔀", warning: "⚠️", wave: "👋", white_check_mark: "✅",
  wrench: "🔧", x: "❌", zzz: "💤",
};

// Shortcodes in a text as their emoji; an unknown one stays as typed.
export const emojify = (text) => String(text).replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] ?? m);
