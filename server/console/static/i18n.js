// Every string the console shows, in zh-CN (default) and English; times in the configured
// time zone (Asia/Shanghai unless the server says otherwise).
const STRINGS = {
  "zh-CN": {
    "app.title": "转关运输监控",
    "app.subtitle": "BondWatch 监管运输监控",
    "login.heading": "登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.bad": "用户名或密码错误",
    "login.locked": "登录失败次数过多，请在 {s} 秒后重试",
    "login.failed": "登录失败：{msg}",
    "login.language": "语言",
    "nav.logout": "退出",
    "nav.users": "账户管理",
    "status.live": "实时",
    "status.disconnected": "连接中断",
    "status.connecting": "连接中…",
    "status.no_assets": "地图库未安装：请运行 make console-assets",
    "truck.in_transit": "行驶中",
    "truck.stopped": "停车",
    "truck.alarm": "报警",
    "truck.offline": "离线",
    "panel.trucks": "车辆",
    "panel.trip": "行程",
    "col.vehicle": "车辆",
    "col.status": "状态",
    "col.speed": "速度 km/h",
    "col.time": "定位时间",
    "trip.none": "点击车辆查看行程",
    "trip.no_trip": "该车辆当前无行程",
    "trip.id": "行程号",
    "trip.route": "路线",
    "trip.status": "行程状态",
    "trip.started": "出发时间",
    "trip.limit": "时限（分钟）",
    "trip.points": "轨迹点",
    "trip.status.declared": "已申报",
    "trip.status.in_transit": "在途",
    "trip.status.arrived": "已抵达",
    "trip.status.released": "已放行",
    "trip.status.held": "已扣留",
    "trip.status.closed": "已结束",
    "follow.start": "跟随",
    "follow.stop": "停止跟随",
    "legend.corridor": "路线走廊",
    "legend.site": "监管场所",
    "legend.gate": "卡口",
    "legend.forbidden": "禁区",
    "legend.stop": "停车区",
    "legend.tunnel": "隧道",
    "legend.urban": "城区",
    "users.heading": "账户管理",
    "users.username": "用户名",
    "users.display_name": "姓名",
    "users.role": "角色",
    "users.password": "初始密码",
    "users.create": "创建账户",
    "users.created": "已创建账户 {name}",
    "users.close": "关闭",
    "users.disabled": "已停用",
    "role.officer": "关员",
    "role.supervisor": "科长",
    "role.admin": "管理员",
    "role.integration": "系统对接",
    "error.forbidden": "无权限：{msg}",
  },
  en: {
    "app.title": "Bonded transport monitoring",
    "app.subtitle": "BondWatch",
    "login.heading": "Sign in",
    "login.username": "Username",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.bad": "Wrong username or password",
    "login.locked": "Too many failed logins; try again in {s} s",
    "login.failed": "Login failed: {msg}",
    "login.language": "Language",
    "nav.logout": "Log out",
    "nav.users": "Accounts",
    "status.live": "Live",
    "status.disconnected": "Disconnected",
    "status.connecting": "Connecting…",
    "status.no_assets": "Map library missing: run make console-assets",
    "truck.in_transit": "In transit",
    "truck.stopped": "Stopped",
    "truck.alarm": "Alarm",
    "truck.offline": "Offline",
    "panel.trucks": "Trucks",
    "panel.trip": "Trip",
    "col.vehicle": "Vehicle",
    "col.status": "Status",
    "col.speed": "Speed km/h",
    "col.time": "Fix time",
    "trip.none": "Click a truck to see its trip",
    "trip.no_trip": "This truck has no open trip",
    "trip.id": "Trip",
    "trip.route": "Route",
    "trip.status": "Trip status",
    "trip.started": "Started",
    "trip.limit": "Time limit (min)",
    "trip.points": "Track points",
    "trip.status.declared": "Declared",
    "trip.status.in_transit": "In transit",
    "trip.status.arrived": "Arrived",
    "trip.status.released": "Released",
    "trip.status.held": "Held",
    "trip.status.closed": "Closed",
    "follow.start": "Follow",
    "follow.stop": "Stop following",
    "legend.corridor": "Route corridor",
    "legend.site": "Site",
    "legend.gate": "Gate",
    "legend.forbidden": "Forbidden",
    "legend.stop": "Stop zone",
    "legend.tunnel": "Tunnel",
    "legend.urban": "Urban",
    "users.heading": "Accounts",
    "users.username": "Username",
    "users.display_name": "Name",
    "users.role": "Role",
    "users.password": "Initial password",
    "users.create": "Create account",
    "users.created": "Account {name} created",
    "users.close": "Close",
    "users.disabled": "disabled",
    "role.officer": "Officer",
    "role.supervisor": "Supervisor",
    "role.admin": "Admin",
    "role.integration": "Integration",
    "error.forbidden": "Not allowed: {msg}",
  },
};

export const LANGUAGES = { "zh-CN": "中文", en: "English" };
const KEY = "bondwatch.lang";
let lang = null;
let timeZone = "Asia/Shanghai";

export function language() {
  if (lang) return lang;
  const saved = localStorage.getItem(KEY);
  lang = saved in STRINGS ? saved : "zh-CN";
  return lang;
}

export function setDefaults({ defaultLanguage, zone }) {
  if (zone) timeZone = zone;
  if (!localStorage.getItem(KEY) && defaultLanguage in STRINGS) lang = defaultLanguage;
}

export function setLanguage(next) {
  if (!(next in STRINGS)) return;
  lang = next;
  localStorage.setItem(KEY, next);
  document.documentElement.lang = next;
  translatePage();
}

export function t(key, params = {}) {
  const text = STRINGS[language()][key] ?? STRINGS["zh-CN"][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function formatTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(language(), {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(iso));
}

// Elements carry data-i18n="key" (text) or data-i18n-placeholder / data-i18n-title.
export function translatePage(root = document) {
  document.documentElement.lang = language();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  document.dispatchEvent(new CustomEvent("languagechange"));
}

export function languagePicker(select) {
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => {
    const option = document.createElement("option");
    option.value = code; option.textContent = name; option.selected = code === language();
    return option;
  }));
  select.addEventListener("change", () => setLanguage(select.value));
}
