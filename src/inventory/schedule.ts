/**
 * backup.schedule: systemd OnCalendar expressions, checked before anything connects. When
 * `systemd-analyze` runs on this machine, it is the judge (the hosts' systemd reads the same
 * grammar); elsewhere (macOS, a container without systemd), calendarSubsetProblem checks the
 * subset pgprov documents: `[WEEKDAYS] [DATE] TIME`, or one of systemd's shorthands.
 */
import { spawnSync } from "node:child_process";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const SHORTHANDS = new Set(["minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly", "semiannually"]);

const SUBSET = 'like "Sun 02:00", "Mon..Sat 02:00", "Mon,Wed *-*-* 03:30" or "daily"';

/** Why an OnCalendar expression is refused, by the documented subset alone; undefined when valid. */
export function calendarSubsetProblem(expression: string): string | undefined {
  const text = expression.trim();
  if (text === "") return `an empty schedule; expected an OnCalendar expression ${SUBSET}`;
  if (/[\u0000-\u001f\u007f]/.test(text)) return "a schedule cannot hold a line break or another control character";
  if (SHORTHANDS.has(text.toLowerCase())) return undefined;
  const words = text.split(/\s+/);
  let i = 0;
  if (/^[A-Za-z]/.test(words[0]!)) {
    const problem = weekdaysProblem(words[0]!);
    if (problem) return problem;
    i++;
  }
  if (words[i]?.includes("-")) {
    const problem = dateProblem(words[i]!);
    if (problem) return problem;
    i++;
  }
  const time = words[i];
  if (time === undefined) return `"${text}" has no time of day; expected an OnCalendar expression ${SUBSET}`;
  const problem = timeProblem(time);
  if (problem) return problem;
  if (i + 1 < words.length) return `"${words.slice(i + 1).join(" ")}" after the time of day; expected an OnCalendar expression ${SUBSET}`;
  return undefined;
}

function dayIndex(word: string): number {
  const w = word.toLowerCase();
  const i = DAYS.indexOf(w);
  return i >= 0 ? i : FULL_DAYS.indexOf(w);
}

function weekdaysProblem(word: string): string | undefined {
  for (const part of word.split(",")) {
    const days = part.split("..");
    if (days.length > 2 || days.some((d) => dayIndex(d) < 0)) {
      return `"${part}" is not a weekday or a range of them (Mon, Tue, Wed, Thu, Fri, Sat, Sun; Mon..Fri; Sat,Sun)`;
    }
  }
  return undefined;
}

function dateProblem(word: string): string | undefined {
  const parts = word.split("-");
  const limits: [number, number][] = [[1970, 2199], [1, 12], [1, 31]];
  if (parts.length !== 3 || parts.some((p, k) => p !== "*" && !componentOk(p, limits[k]!))) {
    return `"${word}" is not a date; expected YYYY-MM-DD, with * for any (*-*-*)`;
  }
  return undefined;
}

function timeProblem(word: string): string | undefined {
  const parts = word.split(":");
  const limits: [number, number][] = [[0, 23], [0, 59], [0, 59]];
  if (parts.length < 2 || parts.length > 3 || parts.some((p, k) => !componentOk(p, limits[k]!))) {
    return `"${word}" is not a time of day; expected HH:MM or HH:MM:SS (hours 0 to 23, minutes and seconds 0 to 59; * for any, a,b for a list, /N for a step)`;
  }
  return undefined;
}

/** A number in range, `*`, a comma-separated list of them, each with an optional `/step`. */
function componentOk(text: string, [min, max]: [number, number]): boolean {
  return text.split(",").every((item) => {
    const m = /^(\*|\d{1,4})(?:\/(\d{1,4}))?$/.exec(item);
    if (!m) return false;
    if (m[2] !== undefined && Number(m[2]) === 0) return false;
    return m[1] === "*" || (Number(m[1]) >= min && Number(m[1]) <= max);
  });
}

let analyzer: boolean | undefined;

/**
 * Why an OnCalendar expression is refused; undefined when valid. systemd-analyze decides when it
 * runs here; otherwise the documented subset does (and may refuse an expression systemd would take).
 */
export function calendarProblem(expression: string): string | undefined {
  const subset = calendarSubsetProblem(expression);
  if (/[\u0000-\u001f\u007f]/.test(expression)) return subset;
  if (analyzer === undefined) analyzer = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore", timeout: 5000 }).status === 0;
  if (!analyzer) return subset;
  const run = spawnSync("systemd-analyze", ["calendar", "--", expression], { encoding: "utf8", timeout: 5000 });
  if (run.status === 0) return undefined;
  return subset ?? `systemd does not read "${expression}" as an OnCalendar expression (${(run.stderr || "").trim().split("\n").at(-1)})`;
}
