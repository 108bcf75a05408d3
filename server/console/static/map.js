// The live map (Leaflet, served by this server): geography layers, trucks, a trip's track.
import { api } from "./api.js";
import { t } from "./i18n.js";

const L = window.L;
const ZONE_STYLE = {
  forbidden: { color: "#b91c1c", fillColor: "#dc2626", fillOpacity: 0.3, weight: 1 },
  stop: { color: "#15803d", fillColor: "#16a34a", fillOpacity: 0.25, weight: 1 },
  tunnel: { color: "#57534e", fillColor: "#78716c", fillOpacity: 0.35, weight: 1 },
  urban: { color: "#7e22ce", fillColor: "#9333ea", fillOpacity: 0.08, weight: 1, dashArray: "4 4" },
};
const EARTH_CIRCUMFERENCE_M = 40075016.686;
//: The offline background's land (server/console/basemap.py: Natural Earth 1:10m); the
//: sea is the map's own colour (.offline-basemap in console.css).
const LAND_STYLE = { color: "#8fa9ba", weight: 1, fillColor: "#f3f1ea", fillOpacity: 1, interactive: false };
const NATURAL_EARTH = '<span data-raw="" lang="en"><a href="https://www.naturalearthdata.com" rel="noopener" target="_blank">Natural Earth</a></span>';
//: A truck's place in the marker clusters is brought up to date once it has moved this
//: many screen pixels from where the clusters last placed it (see applyChanges)…
const REINDEX_PX = 8;
//: …at most this often, and for at most this many trucks at a time (the rest next time).
const REINDEX_EVERY_MS = 1000;
const REINDEX_MOST = 80;

// Metres on the ground per screen pixel at a latitude and zoom (Web Mercator).
export function metresPerPixel(lat, zoom) {
  return (EARTH_CIRCUMFERENCE_M * Math.cos((lat * Math.PI) / 180)) / 2 ** (zoom + 8);
}

function meanLat(coords) {
  return coords.reduce((sum, c) => sum + c[1], 0) / coords.length;
}

export class LiveMap {
  constructor(element, settings, onSelect) {
    this.settings = settings;
    this.onSelect = onSelect;
    const maxZoom = settings.tiles?.max_zoom ?? 18;
    this.map = L.map(element, { zoomControl: false, minZoom: 3, maxZoom, worldCopyJump: false });
    this.map.setView([23.1, 113.4], 10); // until the geography says where to look
    // Leaflet's own "Leaflet" link carries an English title: the name alone.
    this.map.attributionControl.setPrefix('<a href="https://leafletjs.com" rel="noopener" target="_blank">Leaflet</a>');
    this.zoomControl = null;
    this.relabel();
    if (settings.tiles) {
      this.tileLayer = L.tileLayer(settings.tiles.url, {
        attribution: settings.tiles.attribution, maxZoom: settings.tiles.max_zoom, className: "base-tiles",
      }).addTo(this.map);
      element.dataset.tiles = settings.tiles.url;
    } else {
      this.tileLayer = null;
      element.classList.add("plain-background");
      this.basemap = this.drawBasemap(element);
    }
    this.corridors = [];
    this.layers = {
      zones: L.layerGroup().addTo(this.map),
      routes: L.layerGroup().addTo(this.map),
      gates: L.layerGroup().addTo(this.map),
      track: L.layerGroup().addTo(this.map),
    };
    this.trucks = L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false });
    this.trucks.addTo(this.map);
    this.markers = new Map();
    this.following = null;
    this.stale = new Set(); // markers whose cluster place lags behind their position
    this.reindexTimer = null;
    this.map.on("zoomend", () => this.resizeCorridors());
    this.map.on("moveend", () => this.reindexSoon(0));
    this.map.on("dragstart", () => { this.following = null; this.onSelect?.(null, "unfollow"); });
  }

  // Without a tile server: land and coastline of the served region from the server (no
  // request leaves it), beneath every other layer; the plain background if it cannot.
  async drawBasemap(element) {
    try {
      const land = await api("/console/basemap");
      const pane = this.map.createPane("basemap");
      pane.style.zIndex = 150; // below the overlays (400), where tiles would be (200)
      this.landLayer = L.geoJSON(land, { pane: "basemap", style: LAND_STYLE, attribution: NATURAL_EARTH })
        .addTo(this.map);
      element.classList.add("offline-basemap");
      element.dataset.basemap = "land";
    } catch (err) {
      element.dataset.basemap = "none"; // an older server, or no land file: plain background
      console.warn("no offline map background:", err.message ?? err);
    }
  }

  // The zoom buttons' titles in the officer's language (Leaflet's are English): made anew
  // on every language change.
  relabel() {
    this.zoomControl?.remove();
    this.zoomControl = L.control.zoom({ zoomInTitle: t("map.zoom_in"), zoomOutTitle: t("map.zoom_out") }).addTo(this.map);
    for (const marker of this.markers?.values() ?? []) marker.iconKey = null; // titles anew
  }

  drawGeography({ routes, zones, gates }) {
    // Tooltips are functions: written when shown, in the language of that moment.
    for (const f of zones.features) {
      const kind = f.properties.kind;
      L.geoJSON(f, { style: { ...(ZONE_STYLE[kind] ?? {}), className: `zone zone-${kind}` } })
        .bindTooltip(() => `${t("legend." + kind)} ${f.properties.name ?? f.properties.zone_id ?? ""}`)
        .addTo(this.layers.zones);
    }
    for (const f of routes.features) {
      const kind = f.properties.kind;
      if (kind === "site") {
        L.geoJSON(f, { style: { color: "#b45309", fillColor: "#f59e0b", fillOpacity: 0.35, weight: 1, className: "site" } })
          .bindTooltip(() => `${t("legend.site")} ${f.properties.name ?? f.properties.site_id}`)
          .addTo(this.layers.routes);
      } else if (kind === "route" && f.geometry.type === "LineString") {
        const latlngs = f.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
        // The corridor is the line buffered by corridor_m: a round-capped, round-joined
        // stroke as wide as twice the buffer, in pixels for the current zoom.
        const corridor = L.polyline(latlngs, {
          color: "#2563eb", opacity: 0.22, lineCap: "round", lineJoin: "round",
          className: "corridor", interactive: false,
        });
        corridor.corridorM = f.properties.corridor_m ?? 300;
        corridor.lat = meanLat(f.geometry.coordinates);
        this.corridors.push(corridor);
        corridor.addTo(this.layers.routes);
        L.polyline(latlngs, { color: "#1d4ed8", weight: 2, className: "route-line" })
          .bindTooltip(() => `${t("trip.route")} ${f.properties.route_id} · ${corridor.corridorM} m`)
          .addTo(this.layers.routes);
      }
    }
    for (const f of gates.features) {
      const [lon, lat] = f.geometry.coordinates;
      L.circleMarker([lat, lon], { radius: 6, color: "#78350f", fillColor: "#92400e", fillOpacity: 1, weight: 2, className: "gate" })
        .bindTooltip(() => `${t("legend.gate")} ${f.properties.name ?? ""} ${f.properties.gate_id}`)
        .addTo(this.layers.gates);
    }
    const bounds = L.featureGroup([this.layers.routes, this.layers.zones, this.layers.gates].flatMap((g) => g.getLayers())).getBounds();
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [20, 20] });
    else this.map.setView([23.1, 113.4], 10);
    this.resizeCorridors();
  }

  resizeCorridors() {
    const zoom = this.map.getZoom();
    this.map.getContainer().dataset.zoom = String(zoom);
    for (const c of this.corridors) {
      c.setStyle({ weight: Math.max(3, (2 * c.corridorM) / metresPerPixel(c.lat, zoom)) });
    }
  }

  truckIcon(vehicleId, status, selected) {
    return L.divIcon({
      className: "",
      html: `<div class="truck truck-${status}${selected ? " selected" : ""}" data-vehicle="${vehicleId}" data-status="${status}" title="${t("truck." + status)}"><span class="dot"></span><span class="label">${vehicleId}</span></div>`,
      iconSize: [14, 14], iconAnchor: [7, 7],
    });
  }

  // All trucks at once (a snapshot): markers of trucks not in `trucks` are removed.
  updateTrucks(trucks, selectedId) {
    const seen = new Set(trucks.map((truck) => truck.vehicle_id));
    const gone = [];
    for (const [id, marker] of this.markers) {
      if (!seen.has(id)) { gone.push(marker); this.markers.delete(id); this.stale.delete(marker); }
    }
    if (gone.length) this.uncluster(gone);
    this.applyChanges(trucks, selectedId);
  }

  // Some trucks changed (a stream batch). Re-placing a marker in Leaflet.markercluster's
  // clusters costs about a millisecond with 2,000 trucks, so a moved truck's marker is
  // moved on screen at once, and its cluster place is updated later, in batches, once it
  // has drifted REINDEX_PX pixels (trucks in view) — see reindex().
  applyChanges(trucks, selectedId) {
    const added = [];
    let followed = null;
    for (const truck of trucks) {
      const latlng = L.latLng(truck.lat, truck.lon);
      const selected = truck.vehicle_id === selectedId;
      const key = `${truck.status}|${selected}`;
      let marker = this.markers.get(truck.vehicle_id);
      if (!marker) {
        marker = L.marker(latlng, { icon: this.truckIcon(truck.vehicle_id, truck.status, selected), keyboard: true });
        marker.on("click", () => this.onSelect?.(truck.vehicle_id, "click"));
        marker.iconKey = key;
        marker.clusteredAt = latlng;
        this.markers.set(truck.vehicle_id, marker);
        added.push(marker);
      } else {
        const old = marker.getLatLng();
        if (old.lat !== latlng.lat || old.lng !== latlng.lng) {
          this.trucks._ignoreMove = true; // the cluster group would re-place it right away
          marker.setLatLng(latlng);
          this.trucks._ignoreMove = false;
          this.stale.add(marker);
        }
        if (marker.iconKey !== key) { marker.setIcon(this.truckIcon(truck.vehicle_id, truck.status, selected)); marker.iconKey = key; }
      }
      if (this.following === truck.vehicle_id) followed = marker;
    }
    if (added.length) this.trucks.addLayers(added);
    if (this.stale.size) this.reindexSoon(REINDEX_EVERY_MS);
    if (followed) {
      if (this.stale.has(followed)) this.reindex([followed]);
      const latlng = followed.getLatLng();
      this.trucks.zoomToShowLayer(followed, () => this.map.panTo(latlng, { animate: false }));
    }
  }

  reindexSoon(ms) {
    if (this.reindexTimer !== null) return;
    this.reindexTimer = setTimeout(() => { this.reindexTimer = null; this.reindexDrifted(); }, ms);
  }

  // The trucks in view that drifted REINDEX_PX from their cluster place, oldest first.
  reindexDrifted() {
    if (!this.stale.size) return;
    const view = this.map.getBounds().pad(0.2);
    const due = [];
    for (const marker of this.stale) {
      const now = marker.getLatLng();
      if (!view.contains(now) && !view.contains(marker.clusteredAt)) continue; // on panning
      const a = this.map.latLngToLayerPoint(now), b = this.map.latLngToLayerPoint(marker.clusteredAt);
      if (a.distanceTo(b) < REINDEX_PX) continue;
      due.push(marker);
      if (due.length >= REINDEX_MOST) break;
    }
    if (due.length) this.reindex(due);
    if (due.length >= REINDEX_MOST) this.reindexSoon(REINDEX_EVERY_MS);
  }

  // Out of the clusters at their old place, back in at their new one, in one batch.
  reindex(markers) {
    this.uncluster(markers);
    for (const marker of markers) { marker.clusteredAt = marker.getLatLng(); this.stale.delete(marker); }
    this.trucks.addLayers(markers);
  }

  // markercluster finds a marker in its grids by position: remove at the indexed place.
  uncluster(markers) {
    const now = markers.map((marker) => marker.getLatLng());
    markers.forEach((marker) => { marker._latlng = marker.clusteredAt; });
    this.trucks.removeLayers(markers);
    markers.forEach((marker, i) => { marker._latlng = now[i]; });
  }

  // Marks the selected truck (and unmarks the one before).
  markSelected(trucks, selectedId) {
    for (const truck of trucks) {
      const marker = this.markers.get(truck.vehicle_id);
      const key = `${truck.status}|${truck.vehicle_id === selectedId}`;
      if (marker && marker.iconKey !== key) {
        marker.setIcon(this.truckIcon(truck.vehicle_id, truck.status, truck.vehicle_id === selectedId));
        marker.iconKey = key;
      }
    }
  }

  follow(vehicleId) {
    this.following = vehicleId;
    const marker = vehicleId && this.markers.get(vehicleId);
    if (marker && this.stale.has(marker)) this.reindex([marker]);
    if (marker) this.trucks.zoomToShowLayer(marker, () => this.map.panTo(marker.getLatLng()));
  }

  showTrack(points) {
    this.layers.track.clearLayers();
    this.trackLine = null;
    if (!points || points.length < 2) return;
    this.trackLine = L.polyline(points.map((p) => [p.lat, p.lon]), { color: "#0f172a", weight: 3, opacity: 0.7, className: "trip-track" })
      .addTo(this.layers.track);
  }

  // The track grew by its last point(s): extend the drawn line (drawn anew if none yet).
  extendTrack(points) {
    if (!this.trackLine) {
      const markers = this.layers.track.getLayers().filter((layer) => !(layer instanceof L.Polyline));
      this.showTrack(points);
      for (const m of markers) m.addTo(this.layers.track); // e.g. the playback marker
      return;
    }
    const drawn = this.trackLine.getLatLngs().length;
    for (const p of points.slice(drawn)) this.trackLine.addLatLng([p.lat, p.lon]);
  }
}
