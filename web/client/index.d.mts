// Type declarations of hubbub-client's ES module entry (index.mjs).
import hubbub = require("./index.js");

export type HubEvent = hubbub.HubEvent;
export type Reset = hubbub.Reset;
export type Transport = hubbub.Transport;
export type Status = hubbub.Status;
export type StatusInfo = hubbub.StatusInfo;
export type FilterParams = hubbub.FilterParams;
export type WebSocketClass = hubbub.WebSocketClass;
export type SubscribeOptions = hubbub.SubscribeOptions;
export type Subscription = hubbub.Subscription;
export type Draft = hubbub.Draft;
export type PublishOptions = hubbub.PublishOptions;
export type OptimisticOptions = hubbub.OptimisticOptions;
export type PendingItem = hubbub.PendingItem;
export type OrderEntry = hubbub.OrderEntry;
export type Stored = hubbub.Stored;
export type PublishAnswer = hubbub.PublishAnswer;
export type HubError = hubbub.HubError;

export declare const subscribe: typeof hubbub.subscribe;
export declare const publish: typeof hubbub.publish;
export default hubbub;
